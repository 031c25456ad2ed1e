/*
 * autodiff.c — from a model's inference program to its training step and
 * its evaluation step, as graph-to-graph transformations.
 *
 * Requires: a verified inference program with one output; the optimizer's
 * slots for every trainable parameter (made by compile, so that state
 * survives rebuilding the step).  Guarantees: `train` computes, in order,
 * the forward pass in training mode (dropout draws masks), the loss and
 * metrics, every gradient, and one in-place UPDATE per trainable parameter
 * after all gradients; its outputs are the loss then the metrics.  `eval`
 * computes the loss and metrics in inference mode.  Breaks nothing: new
 * nodes are appended to the graph, the inference program is untouched.
 *
 * Gradient rules (one per op, the op table's gradient column in prose):
 *   matmul(x, w)        dx = matmul_nt(dy, w), dw = matmul_tn(x, dy)
 *   bias_add(x, b)      dx = dy, db = bias_grad(dy)
 *   activation(x)       dx = activation_grad(dy, x, y)
 *   activation_alpha(x) dx = activation_alpha_grad(dy, x)
 *   softmax(x)          dx = softmax_grad(dy, y)
 *   conv2d(x, w)        dx = conv2d_grad_input(dy, w), dw = conv2d_grad_filter(x, dy)
 *   max/avgpool2d(x)    dx = pool2d_grad(dy, x, y)
 *   global_avgpool2d(x) dx = global_pool2d_grad(dy, x) (mean or, pool_max, max)
 *   conv2d_transpose(x, w) dx = conv2d(dy, w), dw = conv2d_grad_filter(dy, x)
 *   reshape(x)          dx = reshape(dy)
 *   dropout(x)          dx = dropout_grad(dy) with the forward's mask
 *   add(x…)             dxᵢ = dy, or sum_to(dy) where xᵢ broadcast
 *   concat(x…)          dxᵢ = slice(dy)
 *   batchnorm(x, …)     in training: bn_stats, bn_train, bn_moving (in place);
 *                       dx = bn_grad(dy, x, stats, γ), dγ, dβ = bn_param_grad
 *   unary(x)            dx = unary_grad(dy, x, y)
 *   binary(a, b)        da, db = binary_grad(dy, a, b) (binary_grad_const for a
 *                       constant operand of a batched dy), dy itself for add/sub's
 *                       a (add's b) when it has y's shape
 *   log_softmax(x)      dx = log_softmax_grad(dy, y)
 *   transpose(x)        dx = transpose(dy) with the inverse permutation
 *   strided_slice(x)    dx = strided_slice_grad(dy)
 *   pad(x)              dx = strided_slice(dy), its interior
 *   reduce(x)           dx = reduce_grad(dy, x, y) (not prod)
 *   gather(x, idx)      dx = gather_grad(dy, idx), or gather_grad_param when idx
 *                       is batched and x is not (summed over the batch)
 *   batch_matmul(a, b)  with op(a)·op(b) (op: trans_a, trans_b) and each
 *                       gradient summed to its operand's shape where that
 *                       broadcast: da = dy·op(b)ᵀ (op(b)·dyᵀ when trans_a),
 *                       db = op(a)ᵀ·dy (dyᵀ·op(a) when trans_b), as
 *                       batch_matmul (+ sum_to) for a batched operand, as
 *                       batch_matmul_sum for an unbatched one
 * Keras' stable path: when the output is a softmax (sigmoid) feeding a
 * (binary) cross-entropy, the loss reads the logits and its gradient is the
 * fused p − y, so the softmax's own gradient is never built.
 */
#include <stdlib.h>
#include <string.h>
#include "passes/passes.h"
#include "ir/rng.h"
#include "ir/eltwise.h"

struct builder {
    nncc_graph *g;
    struct ir_node **nodes; /* the program being built */
    int n, cap;
    nncc_tensor **map;      /* forward value id → its training-mode value */
    nncc_tensor **grad;     /* value id → its gradient so far */
    enum nncc_status st;
};

static nncc_tensor *push(struct builder *b, nncc_tensor *t)
{
    if (!t) {
        b->st = nncc_last_status() ? nncc_last_status() : NNCC_ERR_GRAPH;
        return NULL;
    }
    if (!ir_grow_array(&b->nodes, &b->cap, b->n + 1, sizeof *b->nodes)) {
        b->st = NNCC_ERR_NOMEM;
        return NULL;
    }
    b->nodes[b->n++] = t->producer;
    return t;
}

static nncc_tensor *node(struct builder *b, enum ir_op op, nncc_tensor *const *in, int n_in,
                         const struct ir_attrs *a, const struct ir_node *like, const char *what)
{
    if (b->st)
        return NULL;
    char *name = ir_strfmt("%s/%s", like ? like->name : "train", what);
    nncc_tensor *t = name ? ir_add_node(b->g, op, in, n_in, a, like ? like->layer : NULL, name)
                          : NULL;
    free(name);
    return push(b, t);
}

/* Adds a gradient contribution; several are summed with ADD. */
static void contribute(struct builder *b, const nncc_tensor *x, nncc_tensor *dx,
                       const struct ir_node *at)
{
    if (!dx || b->st)
        return;
    nncc_tensor *have = b->grad[x->id];
    if (!have) {
        b->grad[x->id] = dx;
        return;
    }
    nncc_tensor *both[2] = {have, dx};
    b->grad[x->id] = node(b, IR_ADD, both, 2, NULL, at, "grad_sum");
}

/* Which values depend on a trainable parameter (their gradient matters). */
static bool *needs_grad(const struct builder *b)
{
    bool *need = calloc((size_t)b->g->n_nodes + 1, sizeof *need);
    if (!need)
        return NULL;
    for (int i = 0; i < b->n; i++) {
        const struct ir_node *n = b->nodes[i];
        bool v = n->op == IR_PARAM && n->out->role == IR_ROLE_PARAM && n->out->trainable;
        for (int k = 0; k < n->n_in; k++)
            v |= need[n->in[k]->id];
        need[n->out->id] = v;
    }
    return need;
}

/* One operand's gradient of a batch_matmul: the product op(in[0])·op(in[1])
 * summed to x's shape over the axes where x broadcast.  An unbatched x (a
 * weight) takes batch_matmul_sum, whose output has no batch; a batched x
 * the product itself, with sum_to where x broadcast on other axes. */
static void matmul_grad(struct builder *b, const struct ir_node *n, const nncc_tensor *x,
                        nncc_tensor *const *in, bool ta, bool tb)
{
    struct ir_attrs a = {.trans_a = ta, .trans_b = tb, .like = x->shape};
    if (!x->batched) {
        contribute(b, x, node(b, IR_BATCH_MATMUL_SUM, in, 2, &a, n, "grad_sum"), n);
        return;
    }
    nncc_tensor *g = node(b, IR_BATCH_MATMUL, in, 2, &a, n, "grad");
    if (g && !ir_shape_eq(g->shape, x->shape))
        g = node(b, IR_SUM_TO, &g, 1, &a, n, "grad_sum_to");
    contribute(b, x, g, n);
}

static void backward_node(struct builder *b, const struct ir_node *n, nncc_tensor *dy,
                          const bool *need)
{
    nncc_tensor *const *x = n->in;
    nncc_tensor *y = n->out;
    struct ir_attrs a = n->a;
    switch (n->op) {
    case IR_MATMUL:
        if (need[x[0]->id]) {
            nncc_tensor *in[2] = {dy, x[1]};
            contribute(b, x[0], node(b, IR_MATMUL_NT, in, 2, NULL, n, "grad_x"), n);
        }
        if (need[x[1]->id]) {
            nncc_tensor *in[2] = {x[0], dy};
            contribute(b, x[1], node(b, IR_MATMUL_TN, in, 2, NULL, n, "grad_w"), n);
        }
        break;
    case IR_BIAS_ADD:
        if (need[x[0]->id])
            contribute(b, x[0], dy, n);
        if (need[x[1]->id])
            contribute(b, x[1], node(b, IR_BIAS_GRAD, &dy, 1, NULL, n, "grad_b"), n);
        break;
    case IR_ACTIVATION:
        if (n->a.act == NNCC_LINEAR) {
            contribute(b, x[0], dy, n);
        } else {
            nncc_tensor *in[3] = {dy, x[0], y};
            contribute(b, x[0], node(b, IR_ACTIVATION_GRAD, in, 3, &a, n, "grad"), n);
        }
        break;
    case IR_ACTIVATION_ALPHA: {
        nncc_tensor *in[2] = {dy, x[0]};
        contribute(b, x[0], node(b, IR_ACTIVATION_ALPHA_GRAD, in, 2, &a, n, "grad"), n);
        break;
    }
    case IR_SOFTMAX: { /* the axis goes with it (ir/eltwise.h) */
        nncc_tensor *in[2] = {dy, y};
        contribute(b, x[0], node(b, IR_SOFTMAX_GRAD, in, 2, &a, n, "grad"), n);
        break;
    }
    case IR_UNARY: {
        nncc_tensor *in[3] = {dy, x[0], y};
        contribute(b, x[0], node(b, IR_UNARY_GRAD, in, 3, &a, n, "grad"), n);
        break;
    }
    case IR_BINARY:
        for (int k = 0; k < 2; k++) {
            if (!need[x[k]->id])
                continue;
            bool pass = (a.binary == IR_BINARY_ADD || (a.binary == IR_BINARY_SUB && k == 0)) &&
                        ir_shape_eq(x[k]->shape, y->shape) && x[k]->batched == y->batched;
            if (pass) {
                contribute(b, x[k], dy, n);
                continue;
            }
            a.which = k;
            nncc_tensor *in[3] = {dy, x[0], x[1]};
            enum ir_op op = dy->batched && !x[k]->batched ? IR_BINARY_GRAD_CONST : IR_BINARY_GRAD;
            contribute(b, x[k], node(b, op, in, 3, &a, n, k ? "grad_b" : "grad_a"), n);
        }
        break;
    case IR_LOG_SOFTMAX: {
        nncc_tensor *in[2] = {dy, y};
        contribute(b, x[0], node(b, IR_LOG_SOFTMAX_GRAD, in, 2, &a, n, "grad"), n);
        break;
    }
    case IR_CONV2D:
        a.like = x[0]->shape;
        if (need[x[0]->id]) {
            nncc_tensor *in[2] = {dy, x[1]};
            contribute(b, x[0], node(b, IR_CONV2D_GRAD_INPUT, in, 2, &a, n, "grad_x"), n);
        }
        if (need[x[1]->id]) {
            a.like = x[1]->shape;
            nncc_tensor *in[2] = {x[0], dy};
            contribute(b, x[1], node(b, IR_CONV2D_GRAD_FILTER, in, 2, &a, n, "grad_w"), n);
        }
        break;
    case IR_CONV2D_TRANSPOSE: {
        /* y = conv2d_grad_input(x, w): dx is the convolution of dy with the
         * same weights, strides, dilations and pads (output_padding's extra
         * rows are cropped by a smaller, maybe negative, end pad), and dw
         * the convolution's filter gradient with dy as its input and x as
         * its output gradient. */
        if (need[x[0]->id]) {
            struct ir_attrs c = a;
            c.explicit_pad = true;
            c.pad[1] -= a.output_padding[0];
            c.pad[3] -= a.output_padding[1];
            c.output_padding[0] = c.output_padding[1] = 0;
            nncc_tensor *in[2] = {dy, x[1]};
            contribute(b, x[0], node(b, IR_CONV2D, in, 2, &c, n, "grad_x"), n);
        }
        if (need[x[1]->id]) {
            a.like = x[1]->shape;
            nncc_tensor *in[2] = {dy, x[0]};
            contribute(b, x[1], node(b, IR_CONV2D_GRAD_FILTER, in, 2, &a, n, "grad_w"), n);
        }
        break;
    }
    case IR_MAXPOOL2D:
    case IR_AVGPOOL2D: {
        /* Max pooling keeps which cell won each window (pool_argmax, which
         * fusion computes in the forward pooling's kernel), so the
         * gradient need not search the windows of x again. */
        a.pool_max = n->op == IR_MAXPOOL2D;
        nncc_tensor *in[4] = {dy, x[0], y, NULL};
        if (a.pool_max)
            in[3] = node(b, IR_POOL_ARGMAX, &x[0], 1, &n->a, n, "argmax");
        contribute(b, x[0], node(b, IR_POOL2D_GRAD, in, a.pool_max ? 4 : 3, &a, n, "grad"), n);
        break;
    }
    case IR_GLOBAL_AVGPOOL2D: {
        nncc_tensor *in[2] = {dy, x[0]};
        contribute(b, x[0], node(b, IR_GLOBAL_POOL2D_GRAD, in, 2, &a, n, "grad"), n);
        break;
    }
    case IR_RESHAPE: {
        struct ir_attrs r = {.target = x[0]->shape};
        r.target.rank = x[0]->shape.rank - 1;
        memmove(r.target.dim, x[0]->shape.dim + 1, sizeof(int64_t) * (size_t)r.target.rank);
        contribute(b, x[0], node(b, IR_RESHAPE, &dy, 1, &r, n, "grad"), n);
        break;
    }
    case IR_BN_TRAIN: {
        /* inputs (x, stats, [gamma], [beta]) */
        nncc_tensor *gamma = n->a.has_gamma ? x[2] : NULL;
        nncc_tensor *beta = n->a.has_beta ? x[2 + n->a.has_gamma] : NULL;
        if (need[x[0]->id]) {
            nncc_tensor *in[4] = {dy, x[0], x[1], gamma};
            contribute(b, x[0], node(b, IR_BN_GRAD, in, gamma ? 4 : 3, &a, n, "grad_x"), n);
        }
        nncc_tensor *in[3] = {dy, x[0], x[1]};
        if (gamma && need[gamma->id]) {
            a.offset = 0;
            contribute(b, gamma, node(b, IR_BN_PARAM_GRAD, in, 3, &a, n, "grad_gamma"), n);
        }
        if (beta && need[beta->id]) {
            a.offset = 1;
            contribute(b, beta, node(b, IR_BN_PARAM_GRAD, in, 3, &a, n, "grad_beta"), n);
        }
        break;
    }
    case IR_DROPOUT: /* rate 0 stays the identity */
        contribute(b, x[0], dy, n);
        break;
    case IR_DROPOUT_TRAIN:
        contribute(b, x[0], node(b, IR_DROPOUT_GRAD, &dy, 1, &a, n, "grad"), n);
        break;
    case IR_ADD:
        for (int k = 0; k < n->n_in; k++) {
            if (!need[x[k]->id])
                continue;
            if (ir_shape_eq(x[k]->shape, y->shape)) {
                contribute(b, x[k], dy, n);
            } else {
                struct ir_attrs s = {.like = x[k]->shape};
                contribute(b, x[k], node(b, IR_SUM_TO, &dy, 1, &s, n, "grad"), n);
            }
        }
        break;
    case IR_CONCAT: {
        int64_t off = 0;
        for (int k = 0; k < n->n_in; k++) {
            int64_t size = x[k]->shape.dim[n->a.axis];
            if (need[x[k]->id]) {
                struct ir_attrs s = {.axis = n->a.axis, .offset = off, .size = size};
                contribute(b, x[k], node(b, IR_SLICE, &dy, 1, &s, n, "grad"), n);
            }
            off += size;
        }
        break;
    }
    case IR_TRANSPOSE: { /* the inverse permutation */
        struct ir_attrs t = {0};
        for (int i = 0; i < x[0]->shape.rank; i++)
            t.perm[n->a.perm[i]] = i;
        contribute(b, x[0], node(b, IR_TRANSPOSE, &dy, 1, &t, n, "grad"), n);
        break;
    }
    case IR_STRIDED_SLICE:
        a.like = x[0]->shape;
        contribute(b, x[0], node(b, IR_STRIDED_SLICE_GRAD, &dy, 1, &a, n, "grad"), n);
        break;
    case IR_PAD: { /* dy's interior: a strided slice with unit steps */
        struct ir_attrs s = {0};
        for (int i = 0; i < x[0]->shape.rank; i++) {
            bool whole = i == 0 && x[0]->batched;
            s.begin[i] = whole ? 0 : n->a.pad_begin[i];
            s.end[i] = whole ? INT64_MAX : n->a.pad_begin[i] + x[0]->shape.dim[i];
            s.step[i] = 1;
        }
        contribute(b, x[0], node(b, IR_STRIDED_SLICE, &dy, 1, &s, n, "grad"), n);
        break;
    }
    case IR_REDUCE: {
        if (n->a.reduce == IR_REDUCE_PROD) {
            char lb[200];
            b->st = nncc_fail(NNCC_ERR_ARG, "%s: training through reduce prod is not supported yet",
                              ir_node_label(n, lb, sizeof lb));
            break;
        }
        nncc_tensor *in[3] = {dy, x[0], y};
        contribute(b, x[0], node(b, IR_REDUCE_GRAD, in, 3, &a, n, "grad"), n);
        break;
    }
    case IR_GATHER: /* the data's gradient; indices get none */
        if (need[x[0]->id]) {
            /* Batched indices into unbatched data (an embedding): the
             * gradient sums over the batch. */
            nncc_tensor *in[2] = {dy, x[1]};
            a.like = x[0]->shape;
            enum ir_op op = x[1]->batched ? IR_GATHER_GRAD_PARAM : IR_GATHER_GRAD;
            contribute(b, x[0], node(b, op, in, 2, &a, n, "grad"), n);
        }
        break;
    case IR_BATCH_MATMUL: { /* family h4-matmul */
        bool ta = n->a.trans_a, tb = n->a.trans_b;
        if (need[x[0]->id]) {
            nncc_tensor *in[2] = {ta ? x[1] : dy, ta ? dy : x[1]};
            matmul_grad(b, n, x[0], in, ta ? tb : false, ta ? true : !tb);
        }
        if (need[x[1]->id]) {
            nncc_tensor *in[2] = {tb ? dy : x[0], tb ? x[0] : dy};
            matmul_grad(b, n, x[1], in, tb ? true : !ta, tb ? ta : false);
        }
        break;
    }
    /* No default: a new op must say here whether it has a gradient
     * (-Wswitch, an error in the -Werror builds).  These have none; they
     * are made by autodiff itself, after the forward nodes it walks. */
    case IR_INPUT:
    case IR_PARAM:
    case IR_BATCHNORM: /* in training autodiff turns it into bn_stats + bn_train */
    case IR_MATMUL_NT:
    case IR_MATMUL_TN:
    case IR_BIAS_GRAD:
    case IR_ACTIVATION_GRAD:
    case IR_ACTIVATION_ALPHA_GRAD:
    case IR_SOFTMAX_GRAD:
    case IR_CONV2D_GRAD_INPUT:
    case IR_CONV2D_GRAD_FILTER:
    case IR_POOL2D_GRAD:
    case IR_GLOBAL_POOL2D_GRAD:
    case IR_POOL_ARGMAX:
    case IR_DROPOUT_GRAD:
    case IR_SUM_TO:
    case IR_SLICE:
    case IR_LOSS:
    case IR_LOSS_GRAD:
    case IR_METRIC:
    case IR_GLOBAL_NORM:
    case IR_UPDATE:
    case IR_BN_STATS:
    case IR_BN_MOVING:
    case IR_BN_GRAD:
    case IR_BN_PARAM_GRAD:
    case IR_UNARY_GRAD:
    case IR_BINARY_GRAD:
    case IR_BINARY_GRAD_CONST:
    case IR_LOG_SOFTMAX_GRAD:
    case IR_STRIDED_SLICE_GRAD:
    case IR_REDUCE_GRAD:
    case IR_GATHER_GRAD:
    case IR_GATHER_GRAD_PARAM:
    case IR_BATCH_MATMUL_SUM:
    case IR_OP_COUNT: {
        char lb[200];
        b->st = nncc_fail(NNCC_ERR_ARG, "%s: training through %s is not supported yet",
                          ir_node_label(n, lb, sizeof lb), ir_op(n->op)->name);
        break;
    }
    }
}

/* Keras' "accuracy" from shapes (keras/engine/compile_utils.py). */
static enum ir_metric accuracy_kind(struct nncc_shape pred, struct nncc_shape target)
{
    if (pred.dim[pred.rank - 1] == 1)
        return IR_METRIC_BINARY_ACCURACY;
    if (target.rank < pred.rank || target.dim[target.rank - 1] == 1)
        return IR_METRIC_SPARSE_ACCURACY;
    return IR_METRIC_CATEGORICAL_ACCURACY;
}

/* Loss and metrics on (output o, target t); returns the output values. */
static void head(struct builder *b, const struct nncc_train_spec *spec, nncc_tensor *o,
                 nncc_tensor *t, nncc_tensor **outs, int *n_outs, nncc_tensor **logits_grad,
                 bool train)
{
    struct ir_attrs la = {.loss = spec->loss, .logits = spec->from_logits};
    nncc_tensor *z = o;
    const struct ir_node *p = o->producer;
    bool ce = spec->loss == NNCC_CATEGORICAL_CROSSENTROPY ||
              spec->loss == NNCC_SPARSE_CATEGORICAL_CROSSENTROPY;
    if (!spec->from_logits && ce && p->op == IR_SOFTMAX && p->a.axis == 0) { /* the last axis */
        z = p->in[0];
        la.logits = true;
    } else if (!spec->from_logits && spec->loss == NNCC_BINARY_CROSSENTROPY &&
               p->op == IR_ACTIVATION && p->a.act == NNCC_SIGMOID) {
        z = p->in[0];
        la.logits = true;
    }
    nncc_tensor *in[2] = {z, t};
    outs[(*n_outs)++] = node(b, IR_LOSS, in, 2, &la, NULL, train ? "loss" : "eval_loss");
    if (logits_grad) {
        *logits_grad = node(b, IR_LOSS_GRAD, in, 2, &la, NULL, "loss_grad");
        b->grad[z->id] = *logits_grad;
    }
    static const unsigned flags[] = {NNCC_ACCURACY, NNCC_METRIC_MSE, NNCC_METRIC_MAE};
    for (int k = 0; k < 3; k++) {
        if (!(spec->metrics & flags[k]))
            continue;
        struct ir_attrs ma = {.metric = k == 0   ? (int)accuracy_kind(o->shape, t->shape)
                                        : k == 1 ? IR_METRIC_MSE
                                                 : IR_METRIC_MAE};
        nncc_tensor *mi[2] = {o, t};
        outs[(*n_outs)++] = node(b, IR_METRIC, mi, 2, &ma, NULL, train ? "metric" : "eval_metric");
    }
}

static enum nncc_status finish(struct builder *b, struct ir_program *out,
                               const struct ir_program *fwd, nncc_tensor *target,
                               nncc_tensor **outs, int n_outs)
{
    if (b->st)
        return b->st;
    memset(out, 0, sizeof *out);
    out->g = b->g;
    out->nodes = b->nodes;
    out->n_nodes = b->n;
    b->nodes = NULL;
    out->inputs = malloc(sizeof *out->inputs * (size_t)(fwd->n_inputs + 1));
    out->outputs = malloc(sizeof *out->outputs * (size_t)(n_outs ? n_outs : 1));
    if (!out->inputs || !out->outputs) {
        ir_program_free(out);
        return nncc_fail(NNCC_ERR_NOMEM, "out of memory (autodiff)");
    }
    memcpy(out->inputs, fwd->inputs, sizeof *out->inputs * (size_t)fwd->n_inputs);
    out->inputs[fwd->n_inputs] = target;
    out->n_inputs = fwd->n_inputs + 1;
    memcpy(out->outputs, outs, sizeof *outs * (size_t)n_outs);
    out->n_outputs = n_outs;
    return NNCC_OK;
}

enum nncc_status nncc_autodiff(const struct ir_program *fwd, const struct nncc_train_spec *spec,
                               struct ir_program *train, struct ir_program *eval)
{
    NNCC_ASSERT(fwd->n_outputs == 1);
    nncc_graph *g = fwd->g;
    nncc_tensor *target = ir_add_input(g, spec->target_shape, "y_true", NULL);
    if (!target)
        return nncc_last_status();
    nncc_tensor *outs[8 + 256];
    int n_outs = 0;

    /* The evaluation step: inference forward, loss, metrics. */
    struct builder e = {.g = g};
    e.grad = calloc((size_t)g->n_nodes + 256, sizeof *e.grad);
    if (!e.grad)
        return nncc_fail(NNCC_ERR_NOMEM, "out of memory (autodiff)");
    push(&e, target);
    for (int i = 0; i < fwd->n_nodes; i++)
        push(&e, fwd->nodes[i]->out);
    head(&e, spec, fwd->outputs[0], target, outs, &n_outs, NULL, false);
    free(e.grad);
    enum nncc_status st = finish(&e, eval, fwd, target, outs, n_outs);
    free(e.nodes);
    if (st)
        return st;

    /* The training step. */
    struct builder b = {.g = g};
    size_t cap = (size_t)g->n_nodes * 8 + 1024; /* ids of nodes this pass adds stay below */
    b.map = calloc(cap, sizeof *b.map);
    b.grad = calloc(cap, sizeof *b.grad);
    bool *need = NULL;
    if (!b.map || !b.grad) {
        b.st = nncc_fail(NNCC_ERR_NOMEM, "out of memory (autodiff)");
        goto done;
    }
    push(&b, target);
    for (int i = 0; i < fwd->n_nodes && !b.st; i++) {
        struct ir_node *n = fwd->nodes[i];
        nncc_tensor *ins[16];
        bool changed = false;
        if (n->n_in > 16) {
            b.st = nncc_fail(NNCC_ERR_ARG, "autodiff: a node with %d inputs", n->n_in);
            break;
        }
        for (int k = 0; k < n->n_in; k++) {
            ins[k] = b.map[n->in[k]->id] ? b.map[n->in[k]->id] : n->in[k];
            changed |= ins[k] != n->in[k];
        }
        nncc_tensor *t = n->out;
        if (n->op == IR_BATCHNORM) {
            /* Batch statistics, the normalization with them, and the moving
             * averages updated in place (a sink, like the optimizer's). */
            struct ir_attrs a = n->a;
            nncc_tensor *stats = node(&b, IR_BN_STATS, ins, 1, &a, n, "stats");
            nncc_tensor *bi[4] = {ins[0], stats};
            int nb = 2;
            for (int k = 3; k < n->n_in; k++)
                bi[nb++] = ins[k];
            t = node(&b, IR_BN_TRAIN, bi, nb, &a, n, "train");
            a.size = ir_shape_numel(ins[0]->shape, 1) / ins[0]->shape.dim[a.axis];
            a.bessel = ins[0]->shape.rank == 4; /* Keras 2 uses the fused kernel on 4-D */
            nncc_tensor *mv[3] = {ins[1], ins[2], stats};
            node(&b, IR_BN_MOVING, mv, 3, &a, n, "moving");
        } else if (n->op == IR_DROPOUT && n->a.rate > 0) {
            struct ir_attrs a = n->a;
            a.seed = nncc_rng_key(spec->seed ^ n->a.seed, n->name);
            t = node(&b, IR_DROPOUT_TRAIN, ins, 1, &a, n, "train");
        } else if (changed) {
            t = node(&b, n->op, ins, n->n_in, &n->a, n, "train");
        } else {
            push(&b, t);
        }
        if (t && t != n->out)
            b.map[n->out->id] = t;
    }
    nncc_tensor *o = b.map[fwd->outputs[0]->id] ? b.map[fwd->outputs[0]->id] : fwd->outputs[0];
    n_outs = 0;
    nncc_tensor *lg = NULL;
    if (!b.st)
        head(&b, spec, o, target, outs, &n_outs, &lg, true);
    int n_fwd = b.n;
    if (!b.st && !(need = needs_grad(&b)))
        b.st = nncc_fail(NNCC_ERR_NOMEM, "out of memory (autodiff)");
    for (int i = n_fwd - 1; i >= 0 && !b.st; i--) {
        struct ir_node *n = b.nodes[i];
        nncc_tensor *dy = b.grad[n->out->id];
        if (!dy || n->op == IR_PARAM || n->op == IR_INPUT || n->op == IR_LOSS ||
            n->op == IR_LOSS_GRAD || n->op == IR_METRIC || n->op == IR_BN_STATS ||
            n->op == IR_BN_MOVING)
            continue;
        backward_node(&b, n, dy, need);
    }
    if (spec->gradients_only) {
        for (int i = 0; i < spec->n_params && !b.st && n_outs < 8 + 256; i++) {
            nncc_tensor *dw = b.grad[spec->params[i]->id];
            if (!dw) {
                b.st = nncc_fail(NNCC_ERR_GRAPH, "autodiff: weight \"%s\" gets no gradient",
                                 spec->params[i]->name);
                break;
            }
            outs[n_outs++] = dw;
        }
        goto outputs;
    }
    /* Updates after every gradient: backward still reads the weights. */
    nncc_tensor *gnorm = NULL;
    if (!b.st && spec->optimizer.global_clipnorm > 0) {
        nncc_tensor *gs[256];
        int ng = 0;
        for (int i = 0; i < spec->n_params && ng < 256; i++)
            if (b.grad[spec->params[i]->id])
                gs[ng++] = b.grad[spec->params[i]->id];
        if (ng)
            gnorm = node(&b, IR_GLOBAL_NORM, gs, ng, NULL, NULL, "global_norm");
    }
    for (int i = 0; i < spec->n_params && !b.st; i++) {
        nncc_tensor *w = spec->params[i], *dw = b.grad[w->id];
        if (!dw)
            continue; /* not reached by the loss: Keras leaves it alone too */
        nncc_tensor *in[6] = {w, dw};
        int k = 2;
        for (int s = 0; s < spec->n_slots; s++)
            in[k++] = spec->slots[i * spec->n_slots + s];
        struct ir_attrs a = {.opt = spec->optimizer, .n_slots = spec->n_slots};
        if (gnorm) {
            in[k++] = gnorm;
            a.global_norm = true;
        }
        for (int s = 0; s < spec->n_slots; s++)
            push(&b, spec->slots[i * spec->n_slots + s]);
        node(&b, IR_UPDATE, in, k, &a, w->producer, "update");
    }
outputs:
    st = finish(&b, train, fwd, target, outs, n_outs);
    if (st)
        ir_program_free(eval);
done:
    free(need);
    free(b.map);
    free(b.grad);
    free(b.nodes);
    return b.st ? b.st : st;
}
