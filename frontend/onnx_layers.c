/*
 * onnx_layers.c — the OnnxNode layer kind: construction, the lowering
 * dispatch over onnx_ops.def, and what every family file shares: inputs,
 * attributes, layout conversions, weights and the output's facts.
 *
 * Contract: lower_onnx() appends the IR of one ONNX node to the graph and
 * records in the layer's node the output's ONNX shape and stored layout
 * (frontend/onnx.h).  Weights are made on the first call in nncc's layout;
 * while importing, their values are the ONNX constants reordered.  Every
 * failure names the node: `Conv "conv1": …`, and an op or attribute value
 * nncc cannot run is NNCC_ERR_UNSUPPORTED.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include "onnx.h"

static const struct {
    const char *type;
    int min_inputs, max_inputs;
    nncc_tensor *(*lower)(struct onnx_ctx *c);
    const char *attrs;
} ops[] = {
#define ONNX_OP(id, t, mn, mx, fn, at) [ONNX_OP_##id] = {t, mn, mx, fn, at},
#include "onnx_ops.def"
#undef ONNX_OP
};
_Static_assert(sizeof ops / sizeof ops[0] == ONNX_OP_COUNT, "one entry per ONNX op");

const char *onnx_op_name(enum onnx_op op)
{
    return op >= 0 && op < ONNX_OP_COUNT ? ops[op].type : "?";
}

int onnx_op_lookup(const char *type)
{
    for (int i = 0; i < ONNX_OP_COUNT; i++)
        if (strcmp(ops[i].type, type) == 0)
            return i;
    return -1;
}

bool onnx_op_reads_attr(enum onnx_op op, const char *name)
{
    size_t k = strlen(name);
    if (k == 0) /* strstr finds "" everywhere; no attribute is nameless */
        return false;
    for (const char *p = ops[op].attrs; (p = strstr(p, name)); p += k)
        if ((p == ops[op].attrs || p[-1] == ' ') && (p[k] == ' ' || p[k] == 0))
            return true;
    return false;
}

void onnx_op_arity(enum onnx_op op, int *min_inputs, int *max_inputs)
{
    *min_inputs = ops[op].min_inputs;
    *max_inputs = ops[op].max_inputs;
}

nncc_layer *onnx_layer_new(const struct onnx_node *node, const char *name)
{
    if (node->op < 0 || node->op >= ONNX_OP_COUNT || node->n_in < 0 ||
        node->n_in > ONNX_MAX_INPUTS || node->n_consts < 0 || node->n_consts > LAYER_MAX_WEIGHTS ||
        node->n_attrs < 0 || node->n_attrs > ONNX_MAX_ATTRS)
        return NNCC_FAIL_NULL(NNCC_ERR_ARG, "onnx_node \"%s\": malformed node", name ? name : "");
    struct onnx_node *copy = malloc(sizeof *copy);
    if (!copy)
        return NNCC_FAIL_NULL(NNCC_ERR_NOMEM, "out of memory");
    *copy = *node;
    struct onnx_layer_opts o = {.name = name};
    nncc_layer *l = layer_make(LAYER_ONNX, &o, sizeof o);
    if (!l) {
        free(copy);
        return NULL;
    }
    l->onnx = copy;
    return l;
}

bool onnx_model_whole(const nncc_model *m)
{
    for (int i = 0; m && i < m->n_layers; i++)
        if (m->layers[i]->kind == LAYER_ONNX && m->layers[i]->onnx->whole)
            return true;
    return false;
}

const struct onnx_node *onnx_layer_node(const nncc_layer *l)
{
    return l && l->kind == LAYER_ONNX ? l->onnx : NULL;
}

/* ---- Attributes -------------------------------------------------------- */

const struct onnx_attr *onnx_attr(const struct onnx_node *n, const char *name)
{
    for (int i = 0; i < n->n_attrs; i++)
        if (strcmp(n->attrs[i].name, name) == 0)
            return &n->attrs[i];
    return NULL;
}

int64_t onnx_attr_int(const struct onnx_node *n, const char *name, int64_t dflt)
{
    const struct onnx_attr *a = onnx_attr(n, name);
    if (!a)
        return dflt;
    if (a->kind == ONNX_ATTR_FLOAT)
        return onnx_to_int(a->floats[0]);
    return a->n > 0 || a->kind == ONNX_ATTR_INT ? a->ints[0] : dflt;
}

float onnx_attr_float(const struct onnx_node *n, const char *name, float dflt)
{
    const struct onnx_attr *a = onnx_attr(n, name);
    if (!a)
        return dflt;
    if (a->kind == ONNX_ATTR_INT)
        return (float)a->ints[0];
    return a->kind == ONNX_ATTR_FLOAT || a->n > 0 ? a->floats[0] : dflt;
}

const char *onnx_attr_string(const struct onnx_node *n, const char *name, const char *dflt)
{
    const struct onnx_attr *a = onnx_attr(n, name);
    return a && a->kind == ONNX_ATTR_STRING ? a->s : dflt;
}

int onnx_attr_ints(const struct onnx_node *n, const char *name, int64_t *out, int max)
{
    const struct onnx_attr *a = onnx_attr(n, name);
    if (!a)
        return -1;
    int k = a->kind == ONNX_ATTR_INT ? 1 : a->n;
    for (int i = 0; i < k && i < max; i++)
        out[i] = a->ints[i];
    return k;
}

/* ---- Shared lowering --------------------------------------------------- */

nncc_tensor *onnx_fail(struct onnx_ctx *c, enum nncc_status st, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    nncc_fail(st, "%s: %s", c->who, msg);
    return NULL;
}

int64_t onnx_numel(struct nncc_shape s, int from)
{
    int64_t k = 1;
    for (int i = from; i < s.rank; i++)
        k *= s.dim[i];
    return k;
}

struct nncc_shape onnx_ir_shape(const struct onnx_node *n, struct nncc_shape s)
{
    if (!n->whole)
        return s;
    struct nncc_shape r = {.rank = s.rank + 1, .dim = {NNCC_NONE}};
    for (int i = 0; i < s.rank; i++)
        r.dim[i + 1] = s.dim[i];
    return r;
}

/* The facts of a tensor made by another layer: an OnnxNode's recorded
 * ones, or (an Input) PLAIN with its IR shape. */
static void describe(const struct onnx_node *n, nncc_tensor *t, struct onnx_value *v)
{
    *v = (struct onnx_value){.t = t};
    const struct onnx_node *from = onnx_layer_node(t->layer);
    if (from) {
        v->shape = from->out_shape;
        v->layout = from->out_layout;
        v->flat_from = from->flat_from;
        return;
    }
    struct nncc_shape s = t->shape;
    if (n->whole) { /* drop the sample axis */
        for (int i = 1; i < s.rank; i++)
            s.dim[i - 1] = s.dim[i];
        s.rank--;
    }
    v->shape = s;
    v->layout = ONNX_PLAIN;
}

bool onnx_input(struct onnx_ctx *c, int i, struct onnx_value *v, int *k)
{
    *k = -1;
    if (i >= c->n->n_in || c->n->src[i] == ONNX_SRC_ABSENT)
        return false;
    if (c->n->src[i] >= 0) {
        *k = c->n->src[i];
        return false;
    }
    int t = 0; /* tensors are passed in the order of their ONNX inputs */
    for (int j = 0; j < i; j++)
        t += c->n->src[j] == ONNX_SRC_TENSOR;
    NNCC_ASSERT(t < c->n_tensors);
    describe(c->n, c->in[t], v);
    return true;
}

bool onnx_tensor_input(struct onnx_ctx *c, int i, struct onnx_value *v)
{
    int k;
    if (onnx_input(c, i, v, &k))
        return true;
    onnx_fail(c, NNCC_ERR_UNSUPPORTED, "input %d must be computed by the graph, not %s", i,
              k >= 0 ? "a constant" : "absent");
    return false;
}

bool onnx_unflat_input(struct onnx_ctx *c, int i, struct onnx_value *v)
{
    return onnx_tensor_input(c, i, v) && (v->layout != ONNX_FLAT_CL || onnx_to_plain(c, v));
}

nncc_tensor *onnx_node_add(struct onnx_ctx *c, enum ir_op op, nncc_tensor *const *in, int n,
                           const struct ir_attrs *a, const char *what)
{
    char buf[96];
    if (c->n_nodes++ > 0)
        snprintf(buf, sizeof buf, "%s_%d", what, c->n_nodes - 1);
    else
        snprintf(buf, sizeof buf, "%s", what);
    return layer_node(c->l, op, in, n, a, buf);
}

/* The CL permutation of a rank-r tensor: IR axis j holds ONNX axis cl[j]. */
static void cl_perm(int r, int *cl)
{
    cl[0] = 0;
    for (int j = 1; j < r - 1; j++)
        cl[j] = j + 1;
    cl[r - 1] = 1;
}

/* An IR reshape to the ONNX shape s stored PLAIN or CL (dims as stored). */
static nncc_tensor *reshape_to(struct onnx_ctx *c, nncc_tensor *t, struct nncc_shape stored)
{
    struct nncc_shape ir = onnx_ir_shape(c->n, stored);
    struct ir_attrs a = {.target = {.rank = ir.rank - 1}};
    for (int i = 1; i < ir.rank; i++)
        a.target.dim[i - 1] = ir.dim[i];
    return onnx_node_add(c, IR_RESHAPE, &t, 1, &a, "reshape");
}

/* An existing transpose of t by perm (another layer converted the same
 * value already: a residual connection's input, say), else a new one. */
static nncc_tensor *transpose(struct onnx_ctx *c, nncc_tensor *t, const int *perm, int r)
{
    const nncc_graph *g = c->l->g;
    for (int k = 0; k < g->n_nodes; k++) {
        const struct ir_node *n = g->nodes[k];
        if (n->op != IR_TRANSPOSE || n->in[0] != t)
            continue;
        bool same = true;
        for (int i = 0; i < r; i++)
            same &= n->a.perm[i] == perm[i];
        if (same)
            return n->out;
    }
    struct ir_attrs a = {0};
    for (int i = 0; i < r; i++)
        a.perm[i] = perm[i];
    return onnx_node_add(c, IR_TRANSPOSE, &t, 1, &a, "transpose");
}

/* The stored dims of a CL value of ONNX shape s. */
static struct nncc_shape cl_dims(struct nncc_shape s)
{
    int cl[NNCC_MAX_RANK];
    cl_perm(s.rank, cl);
    struct nncc_shape r = {.rank = s.rank};
    for (int j = 0; j < s.rank; j++)
        r.dim[j] = s.dim[cl[j]];
    return r;
}

bool onnx_to_plain(struct onnx_ctx *c, struct onnx_value *v)
{
    if (v->layout == ONNX_PLAIN)
        return true;
    struct nncc_shape s = v->layout == ONNX_CL ? v->shape : v->flat_from;
    nncc_tensor *t = v->t;
    int64_t ch = s.dim[1], spatial = onnx_numel(s, 2);
    if (ch == 1 || spatial == 1) { /* the same memory in either order */
        t = reshape_to(c, t, v->shape);
    } else {
        if (v->layout == ONNX_FLAT_CL && !(t = reshape_to(c, t, cl_dims(s))))
            return false;
        /* Stored (N, S…, C) → (N, C, S…): IR axis i takes stored axis q[i]. */
        int q[NNCC_MAX_RANK];
        q[0] = 0;
        q[1] = s.rank - 1;
        for (int i = 2; i < s.rank; i++)
            q[i] = i - 1;
        t = transpose(c, t, q, s.rank);
        if (t && v->layout == ONNX_FLAT_CL)
            t = reshape_to(c, t, v->shape);
    }
    if (!t)
        return false;
    v->t = t;
    v->layout = ONNX_PLAIN;
    return true;
}

bool onnx_to_cl(struct onnx_ctx *c, struct onnx_value *v)
{
    if (v->layout == ONNX_CL)
        return true;
    if (!onnx_to_plain(c, v))
        return false;
    if (c->n->whole) {
        onnx_fail(c, NNCC_ERR_UNSUPPORTED,
                  "needs a batch axis, but the model was imported whole (its inputs have fixed "
                  "shapes and an op mixes axis 0 with the others)");
        return false;
    }
    struct nncc_shape s = v->shape;
    nncc_tensor *t;
    if (s.dim[1] == 1 || onnx_numel(s, 2) == 1) {
        t = reshape_to(c, v->t, cl_dims(s));
    } else {
        int cl[NNCC_MAX_RANK];
        cl_perm(s.rank, cl);
        t = transpose(c, v->t, cl, s.rank);
    }
    if (!t)
        return false;
    v->t = t;
    v->layout = ONNX_CL;
    return true;
}

bool onnx_reshape(struct onnx_ctx *c, struct onnx_value *v, struct nncc_shape s)
{
    NNCC_ASSERT(v->layout == ONNX_PLAIN);
    nncc_tensor *t = reshape_to(c, v->t, s);
    if (!t)
        return false;
    v->t = t;
    v->shape = s;
    return true;
}

nncc_tensor *onnx_weight(struct onnx_ctx *c, int k, struct nncc_shape shape, bool trainable,
                         const int64_t *perm)
{
    struct onnx_const *k_ = &c->n->consts[k];
    int64_t count = onnx_numel(shape, 0);
    if (count != onnx_numel(k_->shape, 0)) {
        char s0[160], s1[160];
        return onnx_fail(c, NNCC_ERR_SHAPE, "constant \"%s\" has shape %s; expected %s elements (%s)",
                         k_->name, nncc_shape_str(k_->shape, s0, sizeof s0), "as many",
                         nncc_shape_str(shape, s1, sizeof s1));
    }
    nncc_tensor *w = layer_weight(c->l, k_->name, shape, trainable && k_->trainable, NNCC_ZEROS);
    if (!w)
        return NULL;
    if (k_->values) {
        for (int64_t i = 0; i < count; i++)
            w->data[i] = k_->values[perm ? perm[i] : i];
    }
    return w;
}

nncc_tensor *onnx_output(struct onnx_ctx *c, struct onnx_value *v)
{
    if (!v->t)
        return NULL;
    c->n->out_shape = v->shape;
    c->n->out_layout = v->layout;
    c->n->flat_from = v->flat_from;
    return v->t;
}

nncc_tensor *lower_onnx(nncc_layer *l, nncc_tensor *const *in, int n_in)
{
    struct onnx_node *n = l->onnx;
    struct onnx_ctx c = {.l = l, .n = n, .in = in, .n_tensors = n_in};
    snprintf(c.who, sizeof c.who, "%s \"%s\"", onnx_op_name(n->op), l->name ? l->name : "");
    int need = 0;
    for (int i = 0; i < n->n_in; i++)
        need += n->src[i] == ONNX_SRC_TENSOR;
    if (need != n_in)
        return onnx_fail(&c, NNCC_ERR_GRAPH, "called with %d tensors, its node has %d", n_in, need);
    if (l->built && l->n_calls > 0)
        return onnx_fail(&c, NNCC_ERR_GRAPH, "an imported node is called once");
    nncc_tensor *y = ops[n->op].lower(&c);
    if (y) {
        l->built = true;
        for (int k = 0; k < n->n_consts; k++)
            n->consts[k].values = NULL; /* the importer's memory; used once */
    }
    return y;
}
