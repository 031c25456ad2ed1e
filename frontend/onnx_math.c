/*
 * onnx_math.c — lowering of ONNX's element-wise operators and softmax.
 *
 * Unary functions keep their input's layout (a CL tensor stays CL).  Relu,
 * Sigmoid, Tanh, Softplus, Softsign, LeakyRelu and Elu become the IR's
 * ACTIVATION / ACTIVATION_ALPHA, which the fusion pass folds into a
 * preceding convolution or product; the others are the IR's UNARY.  Binary
 * operators broadcast as numpy does: a constant operand is reshaped and
 * reordered at import to the other operand's stored layout, two tensors of
 * different layouts are both made PLAIN.  A per-channel constant added to a
 * CL tensor becomes BIAS_ADD and the sum of two equal tensors ADD, both
 * fusable; everything else is BINARY.
 */
#include <math.h>
#include <float.h>
#include <stdlib.h>
#include <string.h>
#include "onnx.h"
#include "ir/eltwise.h"

static nncc_tensor *activation(struct onnx_ctx *c, struct onnx_value *x, enum nncc_activation act)
{
    struct ir_attrs a = {.act = act};
    x->t = onnx_node_add(c, IR_ACTIVATION, &x->t, 1, &a, nncc_activation_name(act));
    return onnx_output(c, x);
}

static nncc_tensor *unary(struct onnx_ctx *c, struct onnx_value *x, int fn, float p0, float p1,
                          const char *what)
{
    struct ir_attrs a = {.unary = fn, .p0 = p0, .p1 = p1};
    x->t = onnx_node_add(c, IR_UNARY, &x->t, 1, &a, what);
    return onnx_output(c, x);
}

nncc_tensor *onnx_lower_unary(struct onnx_ctx *c)
{
    struct onnx_value x;
    if (!onnx_tensor_input(c, 0, &x))
        return NULL;
    const struct onnx_node *n = c->n;
    switch (n->op) {
    case ONNX_OP_RELU: return activation(c, &x, NNCC_RELU);
    case ONNX_OP_SIGMOID: return activation(c, &x, NNCC_SIGMOID);
    case ONNX_OP_TANH: return activation(c, &x, NNCC_TANH);
    case ONNX_OP_SOFTPLUS: return activation(c, &x, NNCC_SOFTPLUS);
    case ONNX_OP_SOFTSIGN: return activation(c, &x, NNCC_SOFTSIGN);
    case ONNX_OP_LEAKY_RELU:
    case ONNX_OP_ELU: {
        bool leaky = n->op == ONNX_OP_LEAKY_RELU;
        struct ir_attrs a = {.act = leaky ? NNCC_LEAKY_RELU : NNCC_ELU,
                             .alpha = onnx_attr_float(n, "alpha", leaky ? 0.01f : 1.0f)};
        x.t = onnx_node_add(c, IR_ACTIVATION_ALPHA, &x.t, 1, &a, leaky ? "leaky_relu" : "elu");
        return onnx_output(c, &x);
    }
    case ONNX_OP_SELU:
        return unary(c, &x, IR_UNARY_SELU, onnx_attr_float(n, "alpha", 1.67326319217681884765625f),
                     onnx_attr_float(n, "gamma", 1.05070102214813232421875f), "selu");
    case ONNX_OP_HARD_SIGMOID:
        return unary(c, &x, IR_UNARY_HARD_SIGMOID, onnx_attr_float(n, "alpha", 0.2f),
                     onnx_attr_float(n, "beta", 0.5f), "hard_sigmoid");
    case ONNX_OP_CLIP:
        return unary(c, &x, IR_UNARY_CLIP, onnx_attr_float(n, "min", -FLT_MAX),
                     onnx_attr_float(n, "max", FLT_MAX), "clip");
    case ONNX_OP_HARD_SWISH: return unary(c, &x, IR_UNARY_HARD_SWISH, 0, 0, "hard_swish");
    case ONNX_OP_EXP: return unary(c, &x, IR_UNARY_EXP, 0, 0, "exp");
    case ONNX_OP_LOG: return unary(c, &x, IR_UNARY_LOG, 0, 0, "log");
    case ONNX_OP_SQRT: return unary(c, &x, IR_UNARY_SQRT, 0, 0, "sqrt");
    case ONNX_OP_NEG: return unary(c, &x, IR_UNARY_NEG, 0, 0, "neg");
    case ONNX_OP_ABS: return unary(c, &x, IR_UNARY_ABS, 0, 0, "abs");
    case ONNX_OP_RECIPROCAL: return unary(c, &x, IR_UNARY_RECIPROCAL, 0, 0, "reciprocal");
    case ONNX_OP_ERF: return unary(c, &x, IR_UNARY_ERF, 0, 0, "erf");
    case ONNX_OP_FLOOR: return unary(c, &x, IR_UNARY_FLOOR, 0, 0, "floor");
    case ONNX_OP_CEIL: return unary(c, &x, IR_UNARY_CEIL, 0, 0, "ceil");
    default: break;
    }
    return onnx_fail(c, NNCC_ERR_UNSUPPORTED, "not an element-wise function");
}

/* The stored (IR) dims and ONNX-index map of a constant of ONNX shape cs
 * broadcast against a value of rank r stored in `layout`: cs is padded with
 * leading 1s to rank r, then reordered like the value. */
static struct nncc_shape const_stored(struct nncc_shape cs, int r, enum onnx_layout layout,
                                      int64_t **perm)
{
    struct nncc_shape e = {.rank = r};
    for (int i = 0; i < r; i++)
        e.dim[i] = i < r - cs.rank ? 1 : cs.dim[i - (r - cs.rank)];
    *perm = NULL;
    if (layout != ONNX_CL)
        return cs;
    /* CL: stored axis j holds ONNX axis cl[j] = (0, 2, …, r-1, 1). */
    int cl[NNCC_MAX_RANK];
    cl[0] = 0;
    for (int j = 1; j < r - 1; j++)
        cl[j] = j + 1;
    cl[r - 1] = 1;
    struct nncc_shape st = {.rank = r};
    for (int j = 0; j < r; j++)
        st.dim[j] = e.dim[cl[j]];
    int64_t n = onnx_numel(e, 0);
    int64_t *p = malloc((size_t)n * sizeof *p);
    if (!p)
        return (struct nncc_shape){.rank = -1};
    int64_t stride[NNCC_MAX_RANK];
    int64_t acc = 1;
    for (int i = r - 1; i >= 0; i--)
        stride[i] = acc, acc *= e.dim[i];
    for (int64_t f = 0; f < n; f++) { /* f: a stored index */
        int64_t rem = f, src = 0;
        for (int j = r - 1; j >= 0; j--) {
            int64_t ij = rem % st.dim[j];
            rem /= st.dim[j];
            src += ij * stride[cl[j]];
        }
        p[f] = src;
    }
    *perm = p;
    return st;
}

static bool same_shape(struct nncc_shape a, struct nncc_shape b)
{
    if (a.rank != b.rank)
        return false;
    for (int i = 0; i < a.rank; i++)
        if (a.dim[i] != b.dim[i])
            return false;
    return true;
}

/* The broadcast ONNX shape of a and b, or rank -1. */
static struct nncc_shape broadcast(struct nncc_shape a, struct nncc_shape b)
{
    struct nncc_shape o = {.rank = a.rank > b.rank ? a.rank : b.rank};
    for (int i = 0; i < o.rank; i++) {
        int ia = i - (o.rank - a.rank), ib = i - (o.rank - b.rank);
        int64_t da = ia >= 0 ? a.dim[ia] : 1, db = ib >= 0 ? b.dim[ib] : 1;
        if (da == db || db == 1)
            o.dim[i] = da;
        else if (da == 1)
            o.dim[i] = db;
        else if (da == NNCC_NONE || db == NNCC_NONE)
            o.dim[i] = NNCC_NONE;
        else
            return (struct nncc_shape){.rank = -1};
    }
    return o;
}

/* Max/Min of more than two inputs: a chain of BINARY nodes on PLAIN
 * values (constants as weights); same-rank tensors (whole models align
 * ranks like the two-input case). */
static nncc_tensor *variadic(struct onnx_ctx *c)
{
    int fn = c->n->op == ONNX_OP_MAX ? IR_BINARY_MAX : IR_BINARY_MIN;
    struct onnx_value acc = {0};
    for (int i = 0; i < c->n->n_in; i++) {
        struct onnx_value v;
        int k;
        if (onnx_input(c, i, &v, &k)) {
            if (!onnx_to_plain(c, &v))
                return NULL;
        } else if (k >= 0) {
            struct nncc_shape s = c->n->consts[k].shape;
            if (!(v.t = onnx_weight(c, k, s, true, NULL)))
                return NULL;
            v.shape = s;
            v.layout = ONNX_PLAIN;
        } else {
            continue;
        }
        if (!acc.t) {
            acc = v;
            continue;
        }
        struct nncc_shape out = broadcast(acc.shape, v.shape);
        if (out.rank < 0)
            return onnx_fail(c, NNCC_ERR_SHAPE, "the inputs do not broadcast");
        nncc_tensor *in[2] = {acc.t, v.t};
        struct ir_attrs a = {.binary = fn};
        acc.t = onnx_node_add(c, IR_BINARY, in, 2, &a, onnx_op_name(c->n->op));
        acc.shape = out;
        if (!acc.t)
            return NULL;
    }
    if (!acc.t)
        return onnx_fail(c, NNCC_ERR_FORMAT, "no input");
    return onnx_output(c, &acc);
}

nncc_tensor *onnx_lower_binary(struct onnx_ctx *c)
{
    const struct onnx_node *n = c->n;
    struct onnx_value v[2];
    int k[2];
    bool is_t[2];
    for (int i = 0; i < 2; i++)
        is_t[i] = onnx_input(c, i, &v[i], &k[i]);
    if (n->n_in == 1 && (n->op == ONNX_OP_MAX || n->op == ONNX_OP_MIN)) /* max of one */
        return onnx_lower_identity(c);
    if (n->n_in > 2)
        return variadic(c);
    if (!is_t[0] && !is_t[1])
        return onnx_fail(c, NNCC_ERR_UNSUPPORTED, "both operands are constants");
    /* Two tensors: one layout for both.  A CL and a PLAIN one of the same
     * shape meet in CL (the PLAIN one is likely an input some convolution
     * converted already, and what follows likely convolves again). */
    if (is_t[0] && is_t[1] && v[0].layout != v[1].layout && same_shape(v[0].shape, v[1].shape) &&
        v[0].shape.rank >= 3 && !c->n->whole &&
        (v[0].layout == ONNX_CL || v[1].layout == ONNX_CL) && v[0].layout != ONNX_FLAT_CL &&
        v[1].layout != ONNX_FLAT_CL) {
        if (!onnx_to_cl(c, &v[0]) || !onnx_to_cl(c, &v[1]))
            return NULL;
    }
    if (is_t[0] && is_t[1] &&
        (v[0].layout != v[1].layout || v[0].layout == ONNX_FLAT_CL ||
         (v[0].layout == ONNX_CL && !same_shape(v[0].shape, v[1].shape)))) {
        if (!onnx_to_plain(c, &v[0]) || !onnx_to_plain(c, &v[1]))
            return NULL;
    }
    if (is_t[0] && is_t[1] && v[0].shape.rank != v[1].shape.rank) {
        if (!c->n->whole)
            return onnx_fail(c, NNCC_ERR_UNSUPPORTED, "tensors of ranks %d and %d: broadcasting "
                                                      "would move the batch axis",
                             v[0].shape.rank, v[1].shape.rank);
        /* Whole: the lower-rank one gets leading 1s (after the sample axis). */
        int lo = v[0].shape.rank < v[1].shape.rank ? 0 : 1, hi = 1 - lo;
        struct nncc_shape e = {.rank = v[hi].shape.rank};
        int pad = e.rank - v[lo].shape.rank;
        for (int i = 0; i < e.rank; i++)
            e.dim[i] = i < pad ? 1 : v[lo].shape.dim[i - pad];
        if (!onnx_reshape(c, &v[lo], e))
            return NULL;
    }
    int t0 = is_t[0] ? 0 : 1; /* a tensor operand */
    if (v[t0].layout == ONNX_FLAT_CL && !onnx_to_plain(c, &v[t0]))
        return NULL;
    enum onnx_layout layout = v[t0].layout;
    struct nncc_shape onnx_shape[2];
    for (int i = 0; i < 2; i++)
        onnx_shape[i] = is_t[i] ? v[i].shape : n->consts[k[i]].shape;
    /* Before opset 7, Add/Sub/Mul/Div broadcast only with broadcast = 1, B's
     * shape matching A's from `axis` on (default: A's last axes — numpy's
     * rule then); a B placed at an earlier axis gets trailing 1s. */
    if (onnx_attr_int(n, "broadcast", 0) && onnx_attr(n, "axis") && !is_t[1] && is_t[0]) {
        int64_t ax = onnx_attr_int(n, "axis", 0), ra = v[0].shape.rank;
        struct nncc_shape bs = onnx_shape[1];
        if (ax < 0)
            ax += ra;
        if (ax < 0 || ax + bs.rank > ra)
            return onnx_fail(c, NNCC_ERR_SHAPE, "axis %lld does not fit B's rank %d in A's %d",
                             (long long)onnx_attr_int(n, "axis", 0), bs.rank, (int)ra);
        for (int64_t i = bs.rank; i < ra - ax; i++)
            bs.dim[bs.rank++] = 1;
        onnx_shape[1] = bs;
    } else if (onnx_attr(n, "axis") && onnx_attr_int(n, "broadcast", 0)) {
        return onnx_fail(c, NNCC_ERR_UNSUPPORTED, "broadcast with axis on a B computed by the "
                                                  "graph");
    }
    /* Before opset 7, PRelu's slope of shape (C) was per channel (axis 1). */
    if (n->op == ONNX_OP_PRELU && n->opset < 7 && is_t[0] && !is_t[1] &&
        onnx_shape[1].rank == 1 && v[0].shape.rank > 2 && onnx_shape[1].dim[0] > 1 &&
        onnx_shape[1].dim[0] == v[0].shape.dim[1]) {
        struct nncc_shape cs = {.rank = v[0].shape.rank - 1, .dim = {onnx_shape[1].dim[0]}};
        for (int i = 1; i < cs.rank; i++)
            cs.dim[i] = 1;
        onnx_shape[1] = cs;
    }
    struct nncc_shape out = broadcast(onnx_shape[0], onnx_shape[1]);
    if (out.rank < 0) {
        char s0[160], s1[160];
        return onnx_fail(c, NNCC_ERR_SHAPE, "shapes %s and %s do not broadcast",
                         nncc_shape_str(onnx_shape[0], s0, sizeof s0),
                         nncc_shape_str(onnx_shape[1], s1, sizeof s1));
    }
    if (layout == ONNX_CL && out.rank != v[t0].shape.rank && !onnx_to_plain(c, &v[t0]))
        return NULL;
    layout = v[t0].layout;
    struct onnx_value res = {.shape = out, .layout = layout};
    /* The operands: tensors as they are, constants as weights below.  (Set
     * before the loop: assigned inside it, the ASan build of GCC 12 gave both
     * elements the second operand — an unexplained miscompile or a bug not
     * found; the conformance tests in that build catch it.) */
    nncc_tensor *in[2] = {is_t[0] ? v[0].t : NULL, is_t[1] ? v[1].t : NULL};
    if (n->op == ONNX_OP_ADD && is_t[0] && is_t[1] && same_shape(v[0].t->shape, v[1].t->shape)) {
        res.t = onnx_node_add(c, IR_ADD, in, 2, NULL, "add"); /* fusable */
        return onnx_output(c, &res);
    }
    for (int i = 0; i < 2; i++) {
        if (is_t[i])
            continue;
        int64_t *perm;
        struct nncc_shape st = const_stored(onnx_shape[i], out.rank, layout, &perm);
        if (st.rank < 0)
            return onnx_fail(c, NNCC_ERR_NOMEM, "out of memory");
        if (st.rank == 0) /* a scalar: nncc's values have a dimension */
            st = NNCC_SHAPE(1);
        /* A constant vector on the stored last axis added to a tensor of
         * the output's shape is a bias: BIAS_ADD, fusable. */
        nncc_tensor *x = v[t0].t;
        int64_t last = x->shape.dim[x->shape.rank - 1];
        bool bias = n->op == ONNX_OP_ADD && st.rank <= x->shape.rank &&
                    onnx_numel(st, 0) == last && st.dim[st.rank - 1] == last &&
                    same_shape(out, v[t0].shape);
        in[i] = onnx_weight(c, k[i], bias ? NNCC_SHAPE(last) : st, true, perm);
        free(perm);
        if (!in[i])
            return NULL;
        if (bias) {
            nncc_tensor *bin[2] = {x, in[i]};
            res.t = onnx_node_add(c, IR_BIAS_ADD, bin, 2, NULL, "bias_add");
            return onnx_output(c, &res);
        }
    }
    int fn;
    switch (n->op) {
    case ONNX_OP_ADD: fn = IR_BINARY_ADD; break;
    case ONNX_OP_SUB: fn = IR_BINARY_SUB; break;
    case ONNX_OP_MUL: fn = IR_BINARY_MUL; break;
    case ONNX_OP_DIV: fn = IR_BINARY_DIV; break;
    case ONNX_OP_POW: fn = IR_BINARY_POW; break;
    case ONNX_OP_PRELU: fn = IR_BINARY_PRELU; break;
    case ONNX_OP_MAX: fn = IR_BINARY_MAX; break;
    case ONNX_OP_MIN: fn = IR_BINARY_MIN; break;
    default: return onnx_fail(c, NNCC_ERR_UNSUPPORTED, "not a binary operator");
    }
    struct ir_attrs a = {.binary = fn};
    res.t = onnx_node_add(c, IR_BINARY, in, 2, &a, onnx_op_name(n->op));
    return onnx_output(c, &res);
}

nncc_tensor *onnx_lower_softmax(struct onnx_ctx *c)
{
    struct onnx_value x;
    if (!onnx_tensor_input(c, 0, &x))
        return NULL;
    bool log = c->n->op == ONNX_OP_LOG_SOFTMAX;
    int r = x.shape.rank;
    int64_t axis = onnx_attr_int(c->n, "axis", c->n->opset < 13 ? 1 : -1);
    if (axis < -r || axis >= r)
        return onnx_fail(c, NNCC_ERR_SHAPE, "axis %lld is out of range for rank %d",
                         (long long)axis, r);
    if (axis < 0)
        axis += r;
    struct nncc_shape orig = x.shape;
    if (c->n->opset < 13 && axis != r - 1) {
        /* Before opset 13: over all axes from `axis` on, flattened. */
        if (!onnx_to_plain(c, &x))
            return NULL;
        struct nncc_shape s = {.rank = (int)axis + 1};
        for (int i = 0; i < axis; i++)
            s.dim[i] = orig.dim[i];
        s.dim[axis] = onnx_numel(orig, (int)axis);
        if (axis == 0 && !c->n->whole)
            return onnx_fail(c, NNCC_ERR_UNSUPPORTED, "axis 0 is the batch axis");
        if (!onnx_reshape(c, &x, s))
            return NULL;
        axis = s.rank - 1;
    }
    if (x.layout == ONNX_FLAT_CL && !onnx_to_plain(c, &x))
        return NULL;
    int ir_axis;
    if (x.layout == ONNX_CL) {
        /* Stored axis of ONNX axis: 0 → 0, 1 → r-1, i ≥ 2 → i-1. */
        ir_axis = axis == 0 ? 0 : axis == 1 ? r - 1 : (int)axis - 1;
    } else {
        ir_axis = (int)axis + (c->n->whole ? 1 : 0);
    }
    if (ir_axis == 0 && !c->n->whole)
        return onnx_fail(c, NNCC_ERR_UNSUPPORTED, "softmax over the batch axis is not supported");
    /* The IR's convention: 0 the last axis, −rank axis 0 (ir/eltwise.h). */
    int ir_rank = x.t->shape.rank;
    struct ir_attrs a = {.axis = ir_axis == ir_rank - 1 ? 0 : ir_axis == 0 ? -ir_rank : ir_axis};
    x.t = onnx_node_add(c, log ? IR_LOG_SOFTMAX : IR_SOFTMAX, &x.t, 1, &a,
                        log ? "log_softmax" : "softmax");
    if (x.t && !same_shape(x.shape, orig) && !onnx_reshape(c, &x, orig))
        return NULL;
    return onnx_output(c, &x);
}
