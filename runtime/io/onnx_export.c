/*
 * onnx_export.c — nncc_export_onnx: any nncc model, at inference, as an
 * ONNX file.
 *
 * The model is lowered through the one pipeline (nncc_lower, inference,
 * stopped after "shapes"), so the exporter sees the unfused program every
 * backend compiles, and walks its nodes in order, emitting ONNX nodes as
 * protobuf-c messages (all allocated in one arena), packed and written
 * atomically (runtime/io/atomic.h).
 *
 * Contract.  The graph keeps nncc's layout at its boundary: an image input
 * (N, H, W, C) stays NHWC, as nncc's own API takes it; axis 0 of batched
 * values is the dynamic dimension "N".  IR version 8, default-domain opset
 * 13 (13–17 accepted: the reductions' axes stay attributes up to 17).
 * Inference only: dropout is Identity, batch normalization uses the moving
 * statistics.  An op with no ONNX form fails with NNCC_ERR_UNSUPPORTED
 * naming the node.
 *
 * Layout inside the graph.  ONNX's Conv, ConvTranspose and the pools are
 * NCHW.  Each IR value may exist in two forms, materialized lazily: its
 * plain form (nncc's dims, named after the IR value) and, for rank 4, an
 * NCHW form.  NCHW ops read the NCHW form (a Transpose when it does not
 * exist yet) and produce only that; element-wise ops, bias adds, batch
 * normalization on the channel axis, sums and same-shape binary ops keep
 * whichever form their inputs have; a Transpose (0, 2, 3, 1) — an
 * imported NCHW image made NHWC — has its input as its NCHW form; anything
 * else asks for the plain form (a Transpose back).  A chain of
 * convolutions therefore has one Transpose in and one out.  Weights are
 * converted once, at export: HWIO kernels to OIHW initializers, per-channel
 * vectors to (C, 1, 1).
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "onnx_io.h"
#include "atomic.h"
#include "ir/eltwise.h"
#include "passes/passes.h"

#define WHO "export_onnx"
#define ONNX_IR_VERSION 8
#define OPSET_MIN 13
#define OPSET_MAX 17

/* The ONNX names of one IR value's forms (NULL: not made yet). */
struct form {
    const char *plain, *nchw;
    const char *oihw; /* a conv kernel (kh, kw, ci, co) as (co, ci, kh, kw) */
    const char *c11;  /* a vector (C) as (C, 1, 1) */
    bool int64;       /* an input only Gather reads, as indices: declared int64 */
};

struct ex {
    struct nncc_arena ar;
    int opset;
    Onnx__NodeProto **nodes;
    int n_nodes, cap_nodes;
    Onnx__TensorProto **inits;
    int n_inits, cap_inits;
    Onnx__ValueInfoProto **ins, **outs;
    int n_ins, cap_ins, n_outs, cap_outs;
    const char **names; /* every name given, for uniqueness */
    int n_names, cap_names;
    struct form *f;
    int n_f;
    const struct ir_node *cur; /* for messages */
};

/* ---- Messages ------------------------------------------------------------ */

#define ALLOC(e, T) ((T *)nncc_arena_alloc(&(e)->ar, sizeof(T)))

static bool push(struct ex *e, void *arrayp, int *n, int *cap, void *item)
{
    (void)e;
    if (!item || !ir_grow_array(arrayp, cap, *n + 1, sizeof(void *)))
        return false;
    (*(void ***)arrayp)[(*n)++] = item;
    return true;
}

static bool name_used(const struct ex *e, const char *s)
{
    for (int i = 0; i < e->n_names; i++)
        if (strcmp(e->names[i], s) == 0)
            return true;
    return false;
}

/* base, or base_1, base_2 … when taken; NULL when out of memory.  A base
 * "~what" (the helpers' constants and intermediate values) names them
 * after the node being exported: "dense/gelu/one". */
static const char *uniq(struct ex *e, const char *base)
{
    const char *s = NULL;
    if (base[0] == '~' && e->cur) {
        char *c = ir_strfmt("%s/%s", e->cur->out->name, base + 1);
        s = c ? uniq(e, c) : NULL;
        free(c);
        return s;
    }
    if (!name_used(e, base)) {
        s = nncc_arena_strdup(&e->ar, base);
    } else {
        for (int k = 1; !s; k++) {
            char *c = ir_strfmt("%s_%d", base, k);
            if (!c)
                return NULL;
            if (!name_used(e, c))
                s = nncc_arena_strdup(&e->ar, c);
            free(c);
            if (!s && k > 1000000)
                return NULL;
        }
    }
    if (!s || !ir_grow_array(&e->names, &e->cap_names, e->n_names + 1, sizeof *e->names))
        return NULL;
    e->names[e->n_names++] = s;
    return s;
}

static Onnx__AttributeProto *attr_i(struct ex *e, const char *name, int64_t v)
{
    Onnx__AttributeProto *a = ALLOC(e, Onnx__AttributeProto);
    if (!a)
        return NULL;
    onnx__attribute_proto__init(a);
    a->name = nncc_arena_strdup(&e->ar, name);
    a->has_type = true;
    a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
    a->has_i = true;
    a->i = v;
    return a;
}

static Onnx__AttributeProto *attr_f(struct ex *e, const char *name, float v)
{
    Onnx__AttributeProto *a = ALLOC(e, Onnx__AttributeProto);
    if (!a)
        return NULL;
    onnx__attribute_proto__init(a);
    a->name = nncc_arena_strdup(&e->ar, name);
    a->has_type = true;
    a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
    a->has_f = true;
    a->f = v;
    return a;
}

static Onnx__AttributeProto *attr_ints(struct ex *e, const char *name, const int64_t *v, int n)
{
    Onnx__AttributeProto *a = ALLOC(e, Onnx__AttributeProto);
    int64_t *c = nncc_arena_alloc(&e->ar, (size_t)(n > 0 ? n : 1) * sizeof *c);
    if (!a || !c)
        return NULL;
    onnx__attribute_proto__init(a);
    a->name = nncc_arena_strdup(&e->ar, name);
    a->has_type = true;
    a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
    memcpy(c, v, (size_t)n * sizeof *c);
    a->n_ints = (size_t)n;
    a->ints = c;
    return a;
}

static Onnx__AttributeProto *attr_s(struct ex *e, const char *name, const char *v)
{
    Onnx__AttributeProto *a = ALLOC(e, Onnx__AttributeProto);
    char *c = nncc_arena_strdup(&e->ar, v);
    if (!a || !c)
        return NULL;
    onnx__attribute_proto__init(a);
    a->name = nncc_arena_strdup(&e->ar, name);
    a->has_type = true;
    a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING;
    a->has_s = true;
    a->s.data = (uint8_t *)c;
    a->s.len = strlen(c);
    return a;
}

/* Appends node op(ins…) with attributes; its output named uniquely after
 * out (also the node's name).  The output's name, or NULL. */
static const char *node(struct ex *e, const char *op, const char *out, const char *const *ins,
                        int n_in, Onnx__AttributeProto *const *attrs, int n_attrs)
{
    Onnx__NodeProto *nd = ALLOC(e, Onnx__NodeProto);
    char **in = nncc_arena_alloc(&e->ar, (size_t)(n_in + 1) * sizeof *in);
    char **o = nncc_arena_alloc(&e->ar, sizeof *o);
    Onnx__AttributeProto **at = nncc_arena_alloc(&e->ar, (size_t)(n_attrs + 1) * sizeof *at);
    const char *name = out ? uniq(e, out) : NULL;
    if (!nd || !in || !o || !at || !name)
        return NULL;
    onnx__node_proto__init(nd);
    for (int i = 0; i < n_in; i++)
        if (!(in[i] = (char *)ins[i]))
            return NULL;
    for (int i = 0; i < n_attrs; i++)
        if (!(at[i] = attrs[i]))
            return NULL;
    o[0] = (char *)name;
    nd->n_input = (size_t)n_in;
    nd->input = in;
    nd->n_output = 1;
    nd->output = o;
    nd->name = (char *)name;
    nd->op_type = nncc_arena_strdup(&e->ar, op);
    nd->domain = nncc_arena_strdup(&e->ar, "");
    nd->n_attribute = (size_t)n_attrs;
    nd->attribute = at;
    return push(e, &e->nodes, &e->n_nodes, &e->cap_nodes, nd) ? name : NULL;
}

#define NODE(e, op, out, ins, attrs) \
    node((e), (op), (out), (ins), (int)(sizeof(ins) / sizeof *(ins)), (attrs), \
         (int)(sizeof(attrs) / sizeof *(attrs)))
#define NODE0(e, op, out, ins) node((e), (op), (out), (ins), (int)(sizeof(ins) / sizeof *(ins)), NULL, 0)

static Onnx__TensorProto *tensor(struct ex *e, const char *name, const int64_t *dims, int rank,
                                 int dtype)
{
    Onnx__TensorProto *t = ALLOC(e, Onnx__TensorProto);
    int64_t *d = nncc_arena_alloc(&e->ar, (size_t)(rank > 0 ? rank : 1) * sizeof *d);
    if (!t || !d || !name)
        return NULL;
    onnx__tensor_proto__init(t);
    memcpy(d, dims, (size_t)rank * sizeof *d);
    t->n_dims = (size_t)rank;
    t->dims = d;
    t->has_data_type = true;
    t->data_type = dtype;
    t->name = (char *)name;
    return t;
}

/* A float initializer (raw_data, little-endian) named uniquely after base. */
static const char *init_f(struct ex *e, const char *base, const int64_t *dims, int rank,
                          const float *v)
{
    int64_t count = 1;
    for (int i = 0; i < rank; i++)
        count *= dims[i];
    Onnx__TensorProto *t = tensor(e, uniq(e, base), dims, rank, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT);
    uint8_t *raw = nncc_arena_alloc(&e->ar, (size_t)(count > 0 ? count : 1) * 4);
    if (!t || !raw)
        return NULL;
    for (int64_t k = 0; k < count; k++) {
        uint32_t u;
        memcpy(&u, &v[k], 4);
        for (int b = 0; b < 4; b++)
            raw[4 * k + b] = (uint8_t)(u >> (8 * b));
    }
    t->has_raw_data = true;
    t->raw_data.data = raw;
    t->raw_data.len = (size_t)count * 4;
    return push(e, &e->inits, &e->n_inits, &e->cap_inits, t) ? t->name : NULL;
}

static const char *init_i64(struct ex *e, const char *base, const int64_t *dims, int rank,
                            const int64_t *v)
{
    int64_t count = 1;
    for (int i = 0; i < rank; i++)
        count *= dims[i];
    Onnx__TensorProto *t = tensor(e, uniq(e, base), dims, rank, ONNX__TENSOR_PROTO__DATA_TYPE__INT64);
    uint8_t *raw = nncc_arena_alloc(&e->ar, (size_t)(count > 0 ? count : 1) * 8);
    if (!t || !raw)
        return NULL;
    for (int64_t k = 0; k < count; k++)
        for (int b = 0; b < 8; b++)
            raw[8 * k + b] = (uint8_t)((uint64_t)v[k] >> (8 * b));
    t->has_raw_data = true;
    t->raw_data.data = raw;
    t->raw_data.len = (size_t)count * 8;
    return push(e, &e->inits, &e->n_inits, &e->cap_inits, t) ? t->name : NULL;
}

/* A 1-D int64 vector (shapes, axes, pads, slice bounds). */
static const char *ints(struct ex *e, const char *base, const int64_t *v, int n)
{
    int64_t d = n;
    return init_i64(e, base, &d, 1, v);
}

/* A float constant of shape (1) (broadcasts anywhere), or rank 0 (scalar). */
static const char *scalar(struct ex *e, const char *base, float v, bool rank0)
{
    int64_t d = 1;
    return init_f(e, base, &d, rank0 ? 0 : 1, &v);
}

static Onnx__ValueInfoProto *value_info(struct ex *e, const char *name, const nncc_tensor *t,
                                        int dtype)
{
    Onnx__ValueInfoProto *vi = ALLOC(e, Onnx__ValueInfoProto);
    Onnx__TypeProto *tp = ALLOC(e, Onnx__TypeProto);
    Onnx__TypeProto__Tensor *tt = ALLOC(e, Onnx__TypeProto__Tensor);
    Onnx__TensorShapeProto *sh = ALLOC(e, Onnx__TensorShapeProto);
    int r = t->shape.rank;
    Onnx__TensorShapeProto__Dimension **dims =
        nncc_arena_alloc(&e->ar, (size_t)(r > 0 ? r : 1) * sizeof *dims);
    if (!vi || !tp || !tt || !sh || !dims || !name)
        return NULL;
    onnx__value_info_proto__init(vi);
    onnx__type_proto__init(tp);
    onnx__type_proto__tensor__init(tt);
    onnx__tensor_shape_proto__init(sh);
    for (int i = 0; i < r; i++) {
        Onnx__TensorShapeProto__Dimension *d = ALLOC(e, Onnx__TensorShapeProto__Dimension);
        if (!d)
            return NULL;
        onnx__tensor_shape_proto__dimension__init(d);
        if ((i == 0 && t->batched) || t->shape.dim[i] < 0) {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            d->dim_param = nncc_arena_strdup(&e->ar, i == 0 ? "N" : "?");
        } else {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            d->dim_value = t->shape.dim[i];
        }
        dims[i] = d;
    }
    sh->n_dim = (size_t)r;
    sh->dim = dims;
    tt->has_elem_type = true;
    tt->elem_type = dtype;
    tt->shape = sh;
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    vi->name = (char *)name;
    vi->type = tp;
    return vi;
}

/* ---- Forms of IR values ---------------------------------------------------- */

static enum nncc_status unsupported(struct ex *e, const char *what)
{
    char buf[NNCC_MAX_NAME + 96];
    return nncc_fail(NNCC_ERR_UNSUPPORTED, "%s: %s (%s) has no ONNX export: %s", WHO,
                     ir_node_label(e->cur, buf, sizeof buf), ir_op(e->cur->op)->name, what);
}

/* For the bool-returning steps: the error is set, the step failed. */
static bool fails(enum nncc_status st)
{
    (void)st;
    return false;
}

static bool is_param(const nncc_tensor *t) { return t->producer->op == IR_PARAM && t->data; }

static const int64_t TO_NCHW[4] = {0, 3, 1, 2}, TO_NHWC[4] = {0, 2, 3, 1};

static const char *transpose(struct ex *e, const char *in, const char *out, const int64_t *perm,
                             int rank)
{
    const char *ins[] = {in};
    Onnx__AttributeProto *at[] = {attr_ints(e, "perm", perm, rank)};
    return NODE(e, "Transpose", out, ins, at);
}

static void shape_dims(const nncc_tensor *t, int64_t *d)
{
    for (int i = 0; i < t->shape.rank; i++)
        d[i] = t->shape.dim[i];
}

/* The value in nncc's own layout. */
static const char *plain(struct ex *e, const nncc_tensor *t)
{
    struct form *f = &e->f[t->id];
    if (f->plain)
        return f->plain;
    if (f->nchw)
        return f->plain = transpose(e, f->nchw, t->name, TO_NHWC, 4);
    if (is_param(t)) {
        int64_t d[NNCC_MAX_RANK];
        shape_dims(t, d);
        return f->plain = init_f(e, t->name, d, t->shape.rank, t->data);
    }
    nncc_fail(NNCC_ERR_GRAPH, "%s: value %s is used before it is computed", WHO, t->name);
    return NULL;
}

/* A rank-4 value (N, H, W, C) as (N, C, H, W). */
static const char *nchw(struct ex *e, const nncc_tensor *t)
{
    struct form *f = &e->f[t->id];
    if (f->nchw)
        return f->nchw;
    const char *p = plain(e, t);
    char *name = p ? ir_strfmt("%s/nchw", t->name) : NULL;
    if (name)
        f->nchw = transpose(e, p, name, TO_NCHW, 4);
    free(name);
    return f->nchw;
}

/* Whether an element-wise op on t should work on its NCHW form. */
static bool nchw_only(const struct ex *e, const nncc_tensor *t)
{
    return t->shape.rank == 4 && e->f[t->id].nchw && !e->f[t->id].plain;
}

/* A kernel (kh, kw, a, b) as (b, a, kh, kw): Conv's OIHW from nncc's HWIO,
 * and ConvTranspose's (C_in, C_out/g, kh, kw) from (kh, kw, C_out/g, C_in). */
static const char *kernel_oihw(struct ex *e, const nncc_tensor *w)
{
    struct form *f = &e->f[w->id];
    if (f->oihw)
        return f->oihw;
    static const int64_t perm[4] = {3, 2, 0, 1};
    if (!is_param(w)) {
        const char *p = plain(e, w);
        return p ? (f->oihw = transpose(e, p, w->name, perm, 4)) : NULL;
    }
    int64_t kh = w->shape.dim[0], kw = w->shape.dim[1], a = w->shape.dim[2], b = w->shape.dim[3];
    float *v = malloc((size_t)(kh * kw * a * b) * sizeof *v);
    if (!v) {
        nncc_fail(NNCC_ERR_NOMEM, "%s: out of memory", WHO);
        return NULL;
    }
    for (int64_t i = 0; i < kh; i++)
        for (int64_t j = 0; j < kw; j++)
            for (int64_t p = 0; p < a; p++)
                for (int64_t q = 0; q < b; q++)
                    v[((q * a + p) * kh + i) * kw + j] = w->data[((i * kw + j) * a + p) * b + q];
    int64_t d[4] = {b, a, kh, kw};
    f->oihw = init_f(e, w->name, d, 4, v);
    free(v);
    return f->oihw;
}

/* A vector (C) as (C, 1, 1): per-channel constants that broadcast on an
 * NCHW value. */
static const char *vec_c11(struct ex *e, const nncc_tensor *v)
{
    struct form *f = &e->f[v->id];
    if (f->c11)
        return f->c11;
    int64_t d[3] = {v->shape.dim[0], 1, 1};
    if (is_param(v))
        return f->c11 = init_f(e, v->name, d, 3, v->data);
    const char *ins[] = {plain(e, v), ints(e, "~c11_shape", d, 3)};
    return f->c11 = NODE0(e, "Reshape", v->name, ins);
}

/* The output's name: the IR value's, with "/nchw" for the NCHW form. */
static const char *out_base(const struct ex *e, bool nchw_form, char *buf, size_t size)
{
    snprintf(buf, size, "%s%s", e->cur->out->name, nchw_form ? "/nchw" : "");
    return buf;
}

static bool set_out(struct ex *e, bool nchw_form, const char *name)
{
    if (!name)
        return false;
    struct form *f = &e->f[e->cur->out->id];
    if (nchw_form)
        f->nchw = name;
    else
        f->plain = name;
    return true;
}

/* ---- Ops ------------------------------------------------------------------ */

/* One-input element-wise op of the ONNX standard set. */
static const char *un(struct ex *e, const char *op, const char *x, const char *out)
{
    const char *ins[] = {x};
    return NODE0(e, op, out, ins);
}

static const char *un_a(struct ex *e, const char *op, const char *x, const char *out,
                        Onnx__AttributeProto *a0, Onnx__AttributeProto *a1)
{
    const char *ins[] = {x};
    Onnx__AttributeProto *at[] = {a0, a1};
    return node(e, op, out, ins, 1, at, a1 ? 2 : 1);
}

static const char *bin(struct ex *e, const char *op, const char *a, const char *b,
                       const char *out)
{
    const char *ins[] = {a, b};
    return NODE0(e, op, out, ins);
}

/* Keras' activations (ir/activations.def) on x. */
static const char *activation(struct ex *e, enum nncc_activation act, const char *x,
                              const char *out)
{
    switch (act) {
    case NNCC_LINEAR:
        return un(e, "Identity", x, out);
    case NNCC_RELU:
        return un(e, "Relu", x, out);
    case NNCC_SIGMOID:
        return un(e, "Sigmoid", x, out);
    case NNCC_TANH:
        return un(e, "Tanh", x, out);
    case NNCC_ELU:
        return un(e, "Elu", x, out);
    case NNCC_SELU:
        return un_a(e, "Selu", x, out, attr_f(e, "alpha", 1.6732632423543772f),
                    attr_f(e, "gamma", 1.0507009873554805f));
    case NNCC_SOFTPLUS:
        return un(e, "Softplus", x, out);
    case NNCC_SOFTSIGN:
        return un(e, "Softsign", x, out);
    case NNCC_HARD_SIGMOID:
        return un_a(e, "HardSigmoid", x, out, attr_f(e, "alpha", 0.2f), attr_f(e, "beta", 0.5f));
    case NNCC_LEAKY_RELU:
        return un_a(e, "LeakyRelu", x, out, attr_f(e, "alpha", 0.2f), NULL);
    case NNCC_SWISH: /* x · sigmoid(x) */
        return bin(e, "Mul", x, un(e, "Sigmoid", x, "~swish/sigmoid"), out);
    case NNCC_GELU: { /* ½ x (1 + erf(x / √2)) */
        const char *s = bin(e, "Mul", x, scalar(e, "~gelu/rsqrt2", 0.70710678118654752440f, false),
                            "~gelu/scaled");
        const char *r = un(e, "Erf", s, "~gelu/erf");
        r = bin(e, "Add", r, scalar(e, "~gelu/one", 1.0f, false), "~gelu/erf1");
        r = bin(e, "Mul", x, r, "~gelu/prod");
        return bin(e, "Mul", r, scalar(e, "~gelu/half", 0.5f, false), out);
    }
    case NNCC_ACTIVATION_COUNT:
        break;
    case NNCC_SOFTMAX:
        /* Softmax is a SOFTMAX node; activations.def's softmax row is the
         * identity an ACTIVATION node would compute. */
        return un(e, "Identity", x, out);
    }
    unsupported(e, "an unknown activation");
    return NULL;
}

/* ONNX UNARY functions (ir/unary.def). */
static const char *unary(struct ex *e, int fn, float p0, float p1, const char *x, const char *out)
{
    static const char *const plain_ops[IR_UNARY_COUNT] = {
        [IR_UNARY_EXP] = "Exp",         [IR_UNARY_LOG] = "Log",     [IR_UNARY_SQRT] = "Sqrt",
        [IR_UNARY_NEG] = "Neg",         [IR_UNARY_ABS] = "Abs",     [IR_UNARY_RECIPROCAL] = "Reciprocal",
        [IR_UNARY_ERF] = "Erf",         [IR_UNARY_CEIL] = "Ceil",   [IR_UNARY_FLOOR] = "Floor",
        [IR_UNARY_SIGMOID] = "Sigmoid", [IR_UNARY_TANH] = "Tanh",   [IR_UNARY_RELU] = "Relu",
        [IR_UNARY_SOFTPLUS] = "Softplus", [IR_UNARY_SOFTSIGN] = "Softsign",
    };
    if (fn >= 0 && fn < IR_UNARY_COUNT && plain_ops[fn])
        return un(e, plain_ops[fn], x, out);
    switch (fn) {
    case IR_UNARY_HARD_SWISH:
        if (e->opset >= 14)
            return un(e, "HardSwish", x, out);
        /* x · HardSigmoid(x; 1/6, 1/2), HardSwish's definition */
        return bin(e, "Mul", x,
                   un_a(e, "HardSigmoid", x, "~hard_swish/gate", attr_f(e, "alpha", 1.0f / 6.0f),
                        attr_f(e, "beta", 0.5f)),
                   out);
    case IR_UNARY_HARD_SIGMOID:
        return un_a(e, "HardSigmoid", x, out, attr_f(e, "alpha", p0), attr_f(e, "beta", p1));
    case IR_UNARY_CLIP: {
        const char *ins[] = {x, scalar(e, "~clip/min", p0, true), scalar(e, "~clip/max", p1, true)};
        return NODE0(e, "Clip", out, ins);
    }
    case IR_UNARY_SELU:
        return un_a(e, "Selu", x, out, attr_f(e, "alpha", p0), attr_f(e, "gamma", p1));
    case IR_UNARY_ELU:
        return un_a(e, "Elu", x, out, attr_f(e, "alpha", p0), NULL);
    case IR_UNARY_LEAKY_RELU:
        return un_a(e, "LeakyRelu", x, out, attr_f(e, "alpha", p0), NULL);
    }
    unsupported(e, "an unknown unary function");
    return NULL;
}

/* ACTIVATION, ACTIVATION_ALPHA, UNARY, DROPOUT: on whichever form x has. */
static bool eltwise(struct ex *e)
{
    const struct ir_node *n = e->cur;
    bool nf = nchw_only(e, n->in[0]);
    const char *x = nf ? nchw(e, n->in[0]) : plain(e, n->in[0]);
    char ob[NNCC_MAX_NAME + 16];
    const char *out = out_base(e, nf, ob, sizeof ob), *y = NULL;
    if (!x)
        return false;
    switch (n->op) {
    case IR_ACTIVATION:
        y = activation(e, n->a.act, x, out);
        break;
    case IR_ACTIVATION_ALPHA:
        y = n->a.act == NNCC_LEAKY_RELU ? un_a(e, "LeakyRelu", x, out, attr_f(e, "alpha", n->a.alpha), NULL)
                                        : un_a(e, "Elu", x, out, attr_f(e, "alpha", n->a.alpha), NULL);
        break;
    case IR_UNARY:
        y = unary(e, n->a.unary, n->a.p0, n->a.p1, x, out);
        break;
    default: /* DROPOUT: inference */
        y = un(e, "Identity", x, out);
        break;
    }
    return set_out(e, nf, y);
}

static bool conv_like(struct ex *e)
{
    const struct ir_node *n = e->cur;
    const struct ir_attrs *a = &n->a;
    const int64_t pads[4] = {a->pad[0], a->pad[2], a->pad[1], a->pad[3]};
    const int64_t strides[2] = {a->stride[0], a->stride[1]};
    const int64_t dil[2] = {a->dilation[0] > 0 ? a->dilation[0] : 1,
                            a->dilation[1] > 0 ? a->dilation[1] : 1};
    const int64_t kernel[2] = {a->kernel[0], a->kernel[1]};
    char ob[NNCC_MAX_NAME + 16];
    const char *out = out_base(e, true, ob, sizeof ob);
    const char *x = nchw(e, n->in[0]);
    if (n->op == IR_CONV2D || n->op == IR_CONV2D_TRANSPOSE) {
        const int64_t opad[2] = {a->output_padding[0], a->output_padding[1]};
        const char *ins[] = {x, kernel_oihw(e, n->in[1])};
        Onnx__AttributeProto *at[] = {
            attr_ints(e, "kernel_shape", kernel, 2), attr_ints(e, "pads", pads, 4),
            attr_ints(e, "strides", strides, 2),     attr_ints(e, "dilations", dil, 2),
            attr_i(e, "group", a->groups > 1 ? a->groups : 1),
            attr_ints(e, "output_padding", opad, 2),
        };
        bool tr = n->op == IR_CONV2D_TRANSPOSE;
        return set_out(e, true, node(e, tr ? "ConvTranspose" : "Conv", out, ins, 2, at, tr ? 6 : 5));
    }
    bool avg = n->op == IR_AVGPOOL2D;
    if (avg && (dil[0] != 1 || dil[1] != 1))
        return fails(unsupported(e, "AveragePool has no dilations before opset 19"));
    const char *ins[] = {x};
    Onnx__AttributeProto *at[5] = {
        attr_ints(e, "kernel_shape", kernel, 2), attr_ints(e, "pads", pads, 4),
        attr_ints(e, "strides", strides, 2), attr_i(e, "ceil_mode", a->ceil_mode),
        avg ? attr_i(e, "count_include_pad", a->count_include_pad)
            : attr_ints(e, "dilations", dil, 2),
    };
    return set_out(e, true, node(e, avg ? "AveragePool" : "MaxPool", out, ins, 1, at, 5));
}

static bool global_pool(struct ex *e)
{
    const struct ir_node *n = e->cur;
    bool nf = nchw_only(e, n->in[0]);
    const int64_t axes[2] = {nf ? 2 : 1, nf ? 3 : 2};
    const char *ins[] = {nf ? nchw(e, n->in[0]) : plain(e, n->in[0])};
    Onnx__AttributeProto *at[] = {attr_ints(e, "axes", axes, 2), attr_i(e, "keepdims", n->a.keepdims)};
    char ob[NNCC_MAX_NAME + 16];
    /* Without keepdims both forms reduce to the same (N, C). */
    bool out_nchw = nf && n->a.keepdims;
    return set_out(e, out_nchw, NODE(e, n->a.pool_max ? "ReduceMax" : "ReduceMean",
                                     out_base(e, out_nchw, ob, sizeof ob), ins, at));
}

static bool reshape(struct ex *e, const char *x, const nncc_tensor *like, const char *out,
                    bool set)
{
    int64_t d[NNCC_MAX_RANK];
    shape_dims(like, d);
    if (like->batched)
        d[0] = 0; /* ONNX: copy the input's dim 0, the batch */
    for (int i = like->batched; i < like->shape.rank; i++)
        if (d[i] <= 0)
            return fails(unsupported(e, "a Reshape to an empty or unknown dimension"));
    const char *ins[] = {x, ints(e, "~shape", d, like->shape.rank)};
    const char *y = NODE0(e, "Reshape", out, ins);
    return set ? set_out(e, false, y) : y != NULL;
}

static bool batchnorm(struct ex *e)
{
    const struct ir_node *n = e->cur;
    const nncc_tensor *x = n->in[0], *mean = n->in[1], *var = n->in[2];
    const nncc_tensor *gamma = n->a.has_gamma ? n->in[3] : NULL;
    const nncc_tensor *beta = n->a.has_beta ? n->in[3 + n->a.has_gamma] : NULL;
    int r = x->shape.rank, ax = n->a.axis;
    int64_t C = x->shape.dim[ax];
    char ob[NNCC_MAX_NAME + 16];
    bool nf = r == 4 && ax == 3;
    if (ax == 1 || nf) {
        /* ONNX's BatchNormalization (channels on axis 1): the very formula
         * nncc's kernel computes. */
        const char *ones = NULL, *zeros = NULL;
        if (!gamma || !beta) {
            float *v = malloc((size_t)C * sizeof *v);
            if (!v)
                return fails(nncc_fail(NNCC_ERR_NOMEM, "%s: out of memory", WHO));
            for (int64_t i = 0; i < C; i++)
                v[i] = 1;
            if (!gamma)
                ones = init_f(e, "~bn/ones", &C, 1, v);
            memset(v, 0, (size_t)C * sizeof *v);
            if (!beta)
                zeros = init_f(e, "~bn/zeros", &C, 1, v);
            free(v);
        }
        const char *ins[] = {nf ? nchw(e, x) : plain(e, x), gamma ? plain(e, gamma) : ones,
                             beta ? plain(e, beta) : zeros, plain(e, mean), plain(e, var)};
        Onnx__AttributeProto *at[] = {attr_f(e, "epsilon", n->a.epsilon),
                                      attr_f(e, "momentum", n->a.momentum)};
        return set_out(e, nf, NODE(e, "BatchNormalization", out_base(e, nf, ob, sizeof ob), ins, at));
    }
    /* Another axis: y = x·s + t with s = γ/√(var + ε), t = β − mean·s,
     * shaped (C, 1, …) to broadcast on axis ax. */
    if (!is_param(mean) || !is_param(var) || (gamma && !is_param(gamma)) ||
        (beta && !is_param(beta)))
        return fails(unsupported(e, "batch normalization on a middle axis needs constant statistics"));
    float *s = malloc((size_t)C * 2 * sizeof *s);
    if (!s)
        return fails(nncc_fail(NNCC_ERR_NOMEM, "%s: out of memory", WHO));
    float *t = s + C;
    for (int64_t i = 0; i < C; i++) {
        double si = (gamma ? gamma->data[i] : 1.0) / sqrt((double)var->data[i] + n->a.epsilon);
        s[i] = (float)si;
        t[i] = (float)((beta ? beta->data[i] : 0.0) - mean->data[i] * si);
    }
    int64_t d[NNCC_MAX_RANK];
    int k = 0;
    d[k++] = C;
    for (int i = ax + 1; i < r; i++)
        d[k++] = 1;
    const char *sn = init_f(e, "~bn/scale", d, k, s), *tn = init_f(e, "~bn/shift", d, k, t);
    free(s);
    const char *y = bin(e, "Mul", plain(e, x), sn, "~bn/scaled");
    return set_out(e, false, bin(e, "Add", y, tn, out_base(e, false, ob, sizeof ob)));
}

static bool strided_slice(struct ex *e)
{
    const struct ir_node *n = e->cur;
    const nncc_tensor *x = n->in[0];
    int64_t st[NNCC_MAX_RANK], en[NNCC_MAX_RANK], ax[NNCC_MAX_RANK], sp[NNCC_MAX_RANK];
    int k = 0;
    for (int i = x->batched; i < x->shape.rank; i++) {
        if (n->op == IR_SLICE) {
            if (i != n->a.axis)
                continue;
            st[k] = n->a.offset;
            en[k] = n->a.offset + n->a.size;
            sp[k] = 1;
        } else {
            st[k] = n->a.begin[i];
            sp[k] = n->a.step[i];
            /* nncc's end −1 with a negative step means "through index 0";
             * ONNX reads −1 as the last index, and INT64_MIN as that. */
            en[k] = sp[k] < 0 && n->a.end[i] == -1 ? INT64_MIN : n->a.end[i];
        }
        ax[k++] = i;
    }
    char ob[NNCC_MAX_NAME + 16];
    if (k == 0)
        return set_out(e, false, un(e, "Identity", plain(e, x), out_base(e, false, ob, sizeof ob)));
    const char *ins[] = {plain(e, x), ints(e, "~starts", st, k), ints(e, "~ends", en, k),
                         ints(e, "~axes", ax, k), ints(e, "~steps", sp, k)};
    return set_out(e, false, NODE0(e, "Slice", out_base(e, false, ob, sizeof ob), ins));
}

static bool reduce(struct ex *e)
{
    static const char *const ops[] = {[IR_REDUCE_SUM] = "ReduceSum", [IR_REDUCE_MEAN] = "ReduceMean",
                                      [IR_REDUCE_MAX] = "ReduceMax", [IR_REDUCE_MIN] = "ReduceMin",
                                      [IR_REDUCE_PROD] = "ReduceProd"};
    const struct ir_node *n = e->cur;
    const nncc_tensor *x = n->in[0];
    int64_t axes[NNCC_MAX_RANK];
    int k = 0;
    for (int i = 0; i < x->shape.rank; i++)
        if (n->a.reduce_axes >> i & 1u)
            axes[k++] = i;
    if (n->a.reduce < IR_REDUCE_SUM || n->a.reduce > IR_REDUCE_PROD)
        return fails(unsupported(e, "an unknown reduction"));
    char ob[NNCC_MAX_NAME + 16];
    /* nncc keeps shape (1) where ONNX reduces everything to a scalar. */
    bool to_scalar = !n->a.keepdims && k == x->shape.rank;
    const char *out = to_scalar ? "~reduce/scalar" : out_base(e, false, ob, sizeof ob), *y;
    Onnx__AttributeProto *kd = attr_i(e, "keepdims", n->a.keepdims);
    if (n->a.reduce == IR_REDUCE_SUM) { /* axes an input from opset 13 on */
        const char *ins[] = {plain(e, x), ints(e, "~axes", axes, k)};
        y = node(e, ops[n->a.reduce], out, ins, 2, &kd, 1);
    } else { /* an attribute up to opset 17 */
        const char *ins[] = {plain(e, x)};
        Onnx__AttributeProto *at[] = {attr_ints(e, "axes", axes, k), kd};
        y = NODE(e, ops[n->a.reduce], out, ins, at);
    }
    if (!to_scalar || !y)
        return set_out(e, false, y);
    return reshape(e, y, n->out, out_base(e, false, ob, sizeof ob), true);
}

static bool gather(struct ex *e)
{
    const struct ir_node *n = e->cur;
    const nncc_tensor *ix = n->in[1];
    const char *idx;
    if (is_param(ix)) { /* the indices as int64, truncated as nncc does */
        int64_t count = ir_shape_numel(ix->shape, 0), d[NNCC_MAX_RANK];
        int64_t *v = malloc((size_t)(count > 0 ? count : 1) * sizeof *v);
        if (!v)
            return fails(nncc_fail(NNCC_ERR_NOMEM, "%s: out of memory", WHO));
        for (int64_t i = 0; i < count; i++)
            v[i] = (int64_t)ix->data[i];
        shape_dims(ix, d);
        idx = init_i64(e, ix->name, d, ix->shape.rank, v);
        free(v);
    } else if (e->f[ix->id].int64) { /* token ids: an int64 graph input */
        idx = plain(e, ix);
    } else { /* float indices computed by the graph: Cast truncates toward 0 */
        const char *ins[] = {plain(e, ix)};
        Onnx__AttributeProto *at[] = {attr_i(e, "to", ONNX__TENSOR_PROTO__DATA_TYPE__INT64)};
        idx = NODE(e, "Cast", "~gather/indices", ins, at);
    }
    const char *ins[] = {plain(e, n->in[0]), idx};
    Onnx__AttributeProto *at[] = {attr_i(e, "axis", n->a.axis)};
    char ob[NNCC_MAX_NAME + 16];
    return set_out(e, false, NODE(e, "Gather", out_base(e, false, ob, sizeof ob), ins, at));
}

static bool batch_matmul(struct ex *e)
{
    const struct ir_node *n = e->cur;
    const char *ab[2];
    for (int k = 0; k < 2; k++) {
        const nncc_tensor *t = n->in[k];
        ab[k] = plain(e, t);
        if (k == 0 ? n->a.trans_a : n->a.trans_b) {
            int r = t->shape.rank;
            int64_t perm[NNCC_MAX_RANK];
            for (int i = 0; i < r; i++)
                perm[i] = i;
            perm[r - 2] = r - 1;
            perm[r - 1] = r - 2;
            ab[k] = transpose(e, ab[k], k ? "~matmul/b_t" : "~matmul/a_t", perm, r);
        }
    }
    char ob[NNCC_MAX_NAME + 16];
    return set_out(e, false, bin(e, "MatMul", ab[0], ab[1], out_base(e, false, ob, sizeof ob)));
}

static bool binary(struct ex *e)
{
    static const char *const ops[IR_BINARY_COUNT] = {
        [IR_BINARY_ADD] = "Add", [IR_BINARY_SUB] = "Sub", [IR_BINARY_MUL] = "Mul",
        [IR_BINARY_DIV] = "Div", [IR_BINARY_POW] = "Pow", [IR_BINARY_PRELU] = "PRelu",
        [IR_BINARY_MAX] = "Max", [IR_BINARY_MIN] = "Min"};
    const struct ir_node *n = e->cur;
    if (n->a.binary < 0 || n->a.binary >= IR_BINARY_COUNT)
        return fails(unsupported(e, "an unknown binary operation"));
    if (n->a.binary == IR_BINARY_PRELU && !ir_shape_eq(n->in[0]->shape, n->out->shape))
        return fails(unsupported(e, "PRelu's slope must broadcast to x's shape (ONNX's "
                              "unidirectional broadcasting)"));
    char ob[NNCC_MAX_NAME + 16];
    /* Two NCHW values of one shape (no broadcasting to re-map): stays NCHW. */
    bool nf = nchw_only(e, n->in[0]) && nchw_only(e, n->in[1]) &&
              ir_shape_eq(n->in[0]->shape, n->in[1]->shape) && n->a.binary != IR_BINARY_PRELU;
    return set_out(e, nf, bin(e, ops[n->a.binary], nf ? nchw(e, n->in[0]) : plain(e, n->in[0]),
                              nf ? nchw(e, n->in[1]) : plain(e, n->in[1]),
                              out_base(e, nf, ob, sizeof ob)));
}

static bool export_node(struct ex *e, const struct ir_node *n)
{
    e->cur = n;
    char ob[NNCC_MAX_NAME + 16];
    const char *out = out_base(e, false, ob, sizeof ob);
    switch (n->op) {
    case IR_INPUT: {
        const char *name = uniq(e, n->out->name);
        e->f[n->out->id].plain = name;
        return push(e, &e->ins, &e->n_ins, &e->cap_ins, value_info(e, name, n->out, e->f[n->out->id].int64 ? ONNX__TENSOR_PROTO__DATA_TYPE__INT64 : ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT));
    }
    case IR_PARAM:
        return true; /* an initializer in the form its first consumer needs */
    case IR_MATMUL:
        return set_out(e, false, bin(e, "MatMul", plain(e, n->in[0]), plain(e, n->in[1]), out));
    case IR_BIAS_ADD:
        if (nchw_only(e, n->in[0]))
            return set_out(e, true, bin(e, "Add", nchw(e, n->in[0]), vec_c11(e, n->in[1]),
                                        out_base(e, true, ob, sizeof ob)));
        return set_out(e, false, bin(e, "Add", plain(e, n->in[0]), plain(e, n->in[1]), out));
    case IR_ACTIVATION:
    case IR_ACTIVATION_ALPHA:
    case IR_UNARY:
    case IR_DROPOUT:
        return eltwise(e);
    case IR_SOFTMAX:
    case IR_LOG_SOFTMAX: {
        const char *ins[] = {plain(e, n->in[0])};
        Onnx__AttributeProto *at[] = {attr_i(e, "axis", ir_softmax_axis(n))};
        return set_out(e, false, NODE(e, n->op == IR_SOFTMAX ? "Softmax" : "LogSoftmax", out, ins, at));
    }
    case IR_CONV2D:
    case IR_CONV2D_TRANSPOSE:
    case IR_MAXPOOL2D:
    case IR_AVGPOOL2D:
        return conv_like(e);
    case IR_GLOBAL_AVGPOOL2D:
        return global_pool(e);
    case IR_RESHAPE:
        return reshape(e, plain(e, n->in[0]), n->out, out, true);
    case IR_BATCHNORM:
        return batchnorm(e);
    case IR_ADD: { /* a residual sum of NCHW values stays NCHW */
        bool nf = true;
        for (int i = 0; i < n->n_in && nf; i++)
            nf = nchw_only(e, n->in[i]) && ir_shape_eq(n->in[i]->shape, n->out->shape);
        const char *o = out_base(e, nf, ob, sizeof ob);
        const char *acc = nf ? nchw(e, n->in[0]) : plain(e, n->in[0]);
        for (int i = 1; i < n->n_in && acc; i++)
            acc = bin(e, "Add", acc, nf ? nchw(e, n->in[i]) : plain(e, n->in[i]),
                      i == n->n_in - 1 ? o : "~add/partial");
        if (n->n_in == 1)
            acc = un(e, "Identity", acc, o);
        return set_out(e, nf, acc);
    }
    case IR_CONCAT: {
        bool nf = n->out->shape.rank == 4 && n->a.axis == 3;
        for (int i = 0; i < n->n_in && nf; i++)
            nf = nchw_only(e, n->in[i]);
        const char **ins = nncc_arena_alloc(&e->ar, (size_t)n->n_in * sizeof *ins);
        if (!ins)
            return false;
        for (int i = 0; i < n->n_in; i++)
            ins[i] = nf ? nchw(e, n->in[i]) : plain(e, n->in[i]);
        Onnx__AttributeProto *at = attr_i(e, "axis", nf ? 1 : n->a.axis);
        return set_out(e, nf, node(e, "Concat", out_base(e, nf, ob, sizeof ob), ins, n->n_in, &at, 1));
    }
    case IR_BINARY:
        return binary(e);
    case IR_TRANSPOSE: {
        /* An imported NCHW image made NHWC: its NCHW form is the input
         * itself, so a convolution after it needs no Transpose back. */
        static const int64_t nhwc[4] = {0, 2, 3, 1};
        bool to_nhwc = n->out->shape.rank == 4;
        for (int i = 0; i < 4 && to_nhwc; i++)
            to_nhwc = n->a.perm[i] == nhwc[i];
        if (to_nhwc)
            return set_out(e, true, plain(e, n->in[0]));
        int64_t perm[NNCC_MAX_RANK];
        for (int i = 0; i < n->out->shape.rank; i++)
            perm[i] = n->a.perm[i];
        return set_out(e, false, transpose(e, plain(e, n->in[0]), out, perm, n->out->shape.rank));
    }
    case IR_STRIDED_SLICE:
    case IR_SLICE:
        return strided_slice(e);
    case IR_PAD: {
        int r = n->out->shape.rank;
        int64_t pads[2 * NNCC_MAX_RANK];
        for (int i = 0; i < r; i++) {
            pads[i] = n->a.pad_begin[i];
            pads[r + i] = n->a.pad_end[i];
        }
        const char *ins[] = {plain(e, n->in[0]), ints(e, "~pads", pads, 2 * r),
                             scalar(e, "~pad_value", n->a.pad_value, true)};
        Onnx__AttributeProto *at[] = {attr_s(e, "mode", "constant")};
        return set_out(e, false, NODE(e, "Pad", out, ins, at));
    }
    case IR_REDUCE:
        return reduce(e);
    case IR_GATHER:
        return gather(e);
    case IR_BATCH_MATMUL:
        return batch_matmul(e);
    default:
        return fails(unsupported(e, "not an inference op nncc maps to ONNX"));
    }
}

/* ---- The model -------------------------------------------------------------- */

static enum nncc_status write_all(const char *path, const uint8_t *buf, size_t len)
{
    struct atomic_file af;
    if (atomic_open(&af, path, WHO))
        return nncc_last_status();
    for (size_t off = 0; off < len;) {
        ssize_t k = write(af.fd, buf + off, len - off);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            int err = k < 0 ? errno : EIO;
            atomic_abort(&af, NULL);
            return nncc_fail(NNCC_ERR_IO, "%s: cannot write '%s': %s", WHO, path, strerror(err));
        }
        off += (size_t)k;
    }
    return atomic_commit(&af, NULL, WHO, path);
}

static enum nncc_status build(struct ex *e, const nncc_model *m, const struct ir_program *p,
                              Onnx__ModelProto *mp)
{
    int max_id = 0;
    for (int i = 0; i < p->n_nodes; i++) {
        const struct ir_node *n = p->nodes[i];
        if (n->out->id > max_id)
            max_id = n->out->id;
        for (int k = 0; k < n->n_in; k++)
            if (n->in[k]->id > max_id)
                max_id = n->in[k]->id;
    }
    e->n_f = max_id + 1;
    if (!(e->f = calloc((size_t)e->n_f, sizeof *e->f)))
        return nncc_fail(NNCC_ERR_NOMEM, "%s: out of memory", WHO);
    /* An input that only Gather reads, as its indices (token ids), is
     * declared int64, as ONNX models take them; nncc's float rows hold
     * the same integers. */
    for (int i = 0; i < p->n_nodes; i++)
        if (p->nodes[i]->op == IR_INPUT)
            e->f[p->nodes[i]->out->id].int64 = true;
    for (int i = 0; i < p->n_nodes; i++) {
        const struct ir_node *n = p->nodes[i];
        for (int k = 0; k < n->n_in; k++)
            if (n->op != IR_GATHER || k != 1 || n->in[0] == n->in[1])
                e->f[n->in[k]->id].int64 = false;
    }
    for (int k = 0; k < p->n_outputs; k++)
        e->f[p->outputs[k]->id].int64 = false;
    for (int i = 0; i < p->n_nodes; i++)
        if (!export_node(e, p->nodes[i]))
            return nncc_last_status() ? nncc_last_status()
                                      : nncc_fail(NNCC_ERR_NOMEM, "%s: out of memory", WHO);
    /* Graph inputs follow the model's order (the program's INPUT nodes are
     * in creation order); outputs are plain, each its own name. */
    Onnx__ValueInfoProto **ins = nncc_arena_alloc(&e->ar, (size_t)(p->n_inputs + 1) * sizeof *ins);
    if (!ins)
        return nncc_fail(NNCC_ERR_NOMEM, "%s: out of memory", WHO);
    for (int k = 0; k < p->n_inputs; k++) {
        const char *name = e->f[p->inputs[k]->id].plain;
        ins[k] = NULL;
        for (int i = 0; i < e->n_ins && name; i++)
            if (strcmp(e->ins[i]->name, name) == 0)
                ins[k] = e->ins[i];
        if (!ins[k]) /* an input no output needs: declared all the same */
            ins[k] = value_info(e, e->f[p->inputs[k]->id].plain = uniq(e, p->inputs[k]->name),
                                p->inputs[k], ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT);
        if (!ins[k])
            return nncc_fail(NNCC_ERR_NOMEM, "%s: out of memory", WHO);
    }
    for (int k = 0; k < p->n_outputs; k++) {
        const nncc_tensor *t = p->outputs[k];
        e->cur = t->producer;
        const char *name = plain(e, t);
        bool taken = t->producer->op == IR_INPUT || t->producer->op == IR_PARAM;
        for (int i = 0; i < e->n_outs && name && !taken; i++)
            taken = strcmp(e->outs[i]->name, name) == 0;
        if (name && taken)
            name = un(e, "Identity", name, t->name);
        if (!name || !push(e, &e->outs, &e->n_outs, &e->cap_outs,
                               value_info(e, name, t, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT)))
            return nncc_last_status() ? nncc_last_status()
                                      : nncc_fail(NNCC_ERR_NOMEM, "%s: out of memory", WHO);
    }
    Onnx__GraphProto *g = ALLOC(e, Onnx__GraphProto);
    Onnx__OperatorSetIdProto *op = ALLOC(e, Onnx__OperatorSetIdProto);
    Onnx__OperatorSetIdProto **ops = nncc_arena_alloc(&e->ar, sizeof *ops);
    if (!g || !op || !ops)
        return nncc_fail(NNCC_ERR_NOMEM, "%s: out of memory", WHO);
    onnx__graph_proto__init(g);
    g->name = nncc_arena_strdup(&e->ar, m->name && *m->name ? m->name : "nncc");
    g->n_node = (size_t)e->n_nodes;
    g->node = e->nodes;
    g->n_initializer = (size_t)e->n_inits;
    g->initializer = e->inits;
    g->n_input = (size_t)p->n_inputs;
    g->input = ins;
    g->n_output = (size_t)e->n_outs;
    g->output = e->outs;
    onnx__operator_set_id_proto__init(op);
    op->domain = nncc_arena_strdup(&e->ar, "");
    op->has_version = true;
    op->version = e->opset;
    ops[0] = op;
    mp->has_ir_version = true;
    mp->ir_version = ONNX_IR_VERSION;
    mp->n_opset_import = 1;
    mp->opset_import = ops;
    mp->producer_name = nncc_arena_strdup(&e->ar, "nncc");
    mp->producer_version = nncc_arena_strdup(&e->ar, NNCC_VERSION_STRING);
    mp->doc_string = nncc_arena_strdup(&e->ar,
                                       "Exported by nncc at inference: nncc's layout at the "
                                       "boundary (images NHWC), batch axis N.");
    mp->graph = g;
    return NNCC_OK;
}

enum nncc_status nncc_export_onnx_(const nncc_model *m, const char *path,
                                   struct nncc_export_onnx_opts o)
{
    if (!path || !*path)
        return nncc_fail(NNCC_ERR_ARG, "%s: no file name given", WHO);
    if (!model_check_ready(m))
        return nncc_last_status();
    int opset = o.opset ? o.opset : OPSET_MIN;
    if (opset < OPSET_MIN || opset > OPSET_MAX)
        return nncc_fail(NNCC_ERR_ARG, "%s: opset %d is not supported (%d to %d; default %d)", WHO,
                         opset, OPSET_MIN, OPSET_MAX, OPSET_MIN);
    struct nncc_lower_opts lo = {.model_name = m->name, .stop_after = "shapes"};
    struct ir_plan plans[2];
    enum nncc_status st = nncc_lower(&m->program, &lo, plans);
    struct ex e = {.opset = opset};
    Onnx__ModelProto mp;
    onnx__model_proto__init(&mp);
    if (!st)
        st = build(&e, m, &plans[0].program, &mp);
    uint8_t *buf = NULL;
    if (!st) {
        size_t len = onnx__model_proto__get_packed_size(&mp);
        if (!(buf = malloc(len ? len : 1)))
            st = nncc_fail(NNCC_ERR_NOMEM, "%s: out of memory (%zu bytes)", WHO, len);
        else if (onnx__model_proto__pack(&mp, buf) != len)
            st = nncc_fail(NNCC_ERR_GRAPH, "%s: protobuf packing gave the wrong size", WHO);
        else
            st = write_all(path, buf, len);
    }
    free(buf);
    free(e.nodes);
    free(e.inits);
    free(e.ins);
    free(e.outs);
    free(e.names);
    free(e.f);
    nncc_arena_free(&e.ar);
    ir_plan_free(&plans[0]);
    return st;
}
