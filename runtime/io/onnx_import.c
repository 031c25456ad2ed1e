/*
 * onnx_import.c — nncc_load_onnx: an ONNX model as an nncc model.
 *
 * The graph is walked in its (topological) node order.  Every value is
 * either a constant — an initializer, a Constant node, or the result of a
 * node whose inputs are all constant (Shape of a tensor included: its shape
 * is known but for the batch size, which folds to a marker that Reshape
 * reads as "the batch") — or a tensor computed by the graph.  Constant
 * subgraphs are folded here; every other node becomes one OnnxNode layer
 * (frontend/onnx.h) whose integer constant inputs are turned into
 * attributes and whose float constants become its weights.  Split makes one
 * layer per output.
 *
 * Inputs keep the file's shapes and layout: ONNX axis 0 is the batch axis,
 * open at run time.  When that fails (an op moves or reshapes axis 0) and
 * the inputs' shapes are all fixed, the model is imported again "whole",
 * each ONNX tensor one sample.  Outputs are converted back to ONNX's layout.
 * Errors name the file, the node (its name or index), its op type and what
 * is missing.
 */
#include <libgen.h>
#include <stdarg.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include "onnx_io.h"

#define BATCH_DIM INT64_MIN         /* a folded Shape's batch size */
#define UNKNOWN_DIM (INT64_MIN + 1) /* arithmetic on it */

/* A named value of the graph. */
struct value {
    const char *name;
    bool is_const;
    struct onnx_tensor c;  /* constants */
    bool trainable;        /* an initializer (Constant nodes are not) */
    nncc_tensor *t;        /* tensors */
};

struct importer {
    const char *path;
    char dir[PATH_MAX];
    Onnx__ModelProto *m;
    int opset;
    bool whole;
    struct nncc_onnx_opts o;
    struct value *vals;
    int n_vals, cap_vals;
    nncc_graph *g;
    char who[NNCC_MAX_NAME + 96]; /* the current node, for messages */
};

static struct value *find(struct importer *im, const char *name)
{
    for (int i = im->n_vals - 1; i >= 0; i--)
        if (strcmp(im->vals[i].name, name) == 0)
            return &im->vals[i];
    return NULL;
}

static struct value *add_value(struct importer *im, const char *name)
{
    if (!ir_grow_array(&im->vals, &im->cap_vals, im->n_vals + 1, sizeof *im->vals))
        return NULL;
    struct value *v = &im->vals[im->n_vals++];
    memset(v, 0, sizeof *v);
    v->name = name;
    return v;
}

static void free_values(struct importer *im)
{
    for (int i = 0; i < im->n_vals; i++)
        onnx_tensor_free(&im->vals[i].c);
    free(im->vals);
    im->vals = NULL;
    im->n_vals = im->cap_vals = 0;
}

#define FAIL(im, st, ...) im_fail((im), (st), __VA_ARGS__)

/* Sets the error "'<file>': <node>: <message>"; false, for returning. */
static bool im_fail(struct importer *im, enum nncc_status st, const char *fmt, ...)
    NNCC_PRINTF(3, 4);
static bool im_fail(struct importer *im, enum nncc_status st, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    nncc_fail(st, "'%s': %s%s%s", im->path, im->who, *im->who ? ": " : "", msg);
    return false;
}

/* ---- Constants ----------------------------------------------------------- */

static bool new_const(struct importer *im, struct onnx_tensor *c, struct nncc_shape s, bool is_int)
{
    memset(c, 0, sizeof *c);
    /* Folded constants are shapes and small tables: bound them before
     * allocating (a ConstantOfShape could ask for anything). */
    int64_t count = 1;
    for (int i = 0; i < s.rank; i++) {
        if (s.dim[i] < 0 || s.dim[i] > ((int64_t)1 << 40) ||
            (s.dim[i] > 0 && count > ((int64_t)1 << 26) / s.dim[i]))
            return FAIL(im, NNCC_ERR_UNSUPPORTED, "a folded constant of dimension %lld: more "
                                                  "than %d elements",
                        (long long)s.dim[i], 1 << 26);
        count *= s.dim[i];
    }
    c->shape = s;
    c->count = count;
    c->is_int = is_int;
    c->dtype = is_int ? ONNX__TENSOR_PROTO__DATA_TYPE__INT64 : ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    c->f = calloc((size_t)(c->count ? c->count : 1), sizeof *c->f);
    c->i = calloc((size_t)(c->count ? c->count : 1), sizeof *c->i);
    if (!c->f || !c->i) {
        onnx_tensor_free(c);
        return FAIL(im, NNCC_ERR_NOMEM, "out of memory");
    }
    return true;
}

static void set_elem(struct onnx_tensor *c, int64_t k, int64_t iv, double fv)
{
    c->i[k] = iv;
    c->f[k] = (float)fv;
}

static const Onnx__AttributeProto *attr(const Onnx__NodeProto *n, const char *name)
{
    for (size_t i = 0; i < n->n_attribute; i++)
        if (n->attribute[i]->name && strcmp(n->attribute[i]->name, name) == 0)
            return n->attribute[i];
    return NULL;
}

static int64_t attr_i(const Onnx__NodeProto *n, const char *name, int64_t dflt)
{
    const Onnx__AttributeProto *a = attr(n, name);
    return a && a->has_i ? a->i : dflt;
}

static const struct onnx_tensor *in_const(struct importer *im, const Onnx__NodeProto *n, size_t i)
{
    if (i >= n->n_input || !*n->input[i])
        return NULL;
    struct value *v = find(im, n->input[i]);
    return v && v->is_const ? &v->c : NULL;
}

/* Folds node n whose inputs are constant (or, for Shape, a tensor) into
 * out; false without an error when the op is not one folded here. */
static bool fold(struct importer *im, const Onnx__NodeProto *n, struct onnx_tensor *out,
                 bool *folded)
{
    const char *op = n->op_type;
    *folded = true;
    const struct onnx_tensor *a = in_const(im, n, 0), *b = in_const(im, n, 1);
    if (strcmp(op, "Shape") == 0) {
        struct value *v = n->n_input ? find(im, n->input[0]) : NULL;
        if (!v)
            return FAIL(im, NNCC_ERR_FORMAT, "input \"%s\" is not defined", n->n_input ? n->input[0] : "");
        struct nncc_shape s;
        if (v->is_const) {
            s = v->c.shape;
        } else {
            const struct onnx_node *on = onnx_layer_node(nncc_tensor_layer(v->t));
            s = on ? on->out_shape : v->t->shape;
            if (!on && im->whole) {
                for (int i = 1; i < s.rank; i++)
                    s.dim[i - 1] = s.dim[i];
                s.rank--;
            }
        }
        int64_t lo = attr_i(n, "start", 0), hi = attr_i(n, "end", s.rank);
        lo = lo < 0 ? lo + s.rank : lo, hi = hi < 0 ? hi + s.rank : hi;
        lo = lo < 0 ? 0 : lo > s.rank ? s.rank : lo, hi = hi < lo ? lo : hi > s.rank ? s.rank : hi;
        if (!new_const(im, out, NNCC_SHAPE(hi - lo), true))
            return false;
        for (int64_t k = lo; k < hi; k++)
            set_elem(out, k - lo, s.dim[k] == NNCC_NONE ? BATCH_DIM : s.dim[k], (double)s.dim[k]);
        return true;
    }
    if (strcmp(op, "Constant") == 0) {
        const Onnx__AttributeProto *t = attr(n, "value");
        if (t && t->t)
            return onnx_tensor_values(t->t, im->dir, out) ||
                   FAIL(im, nncc_last_status(), "%s", nncc_last_error());
        if ((t = attr(n, "value_float")) && t->has_f) {
            if (!new_const(im, out, (struct nncc_shape){.rank = 0}, false))
                return false;
            set_elem(out, 0, onnx_to_int(t->f), t->f);
            return true;
        }
        if ((t = attr(n, "value_int")) && t->has_i) {
            if (!new_const(im, out, (struct nncc_shape){.rank = 0}, true))
                return false;
            set_elem(out, 0, t->i, (double)t->i);
            return true;
        }
        if ((t = attr(n, "value_ints")) || (t = attr(n, "value_floats"))) {
            bool ints = strcmp(t->name, "value_ints") == 0;
            size_t k = ints ? t->n_ints : t->n_floats;
            if (!new_const(im, out, NNCC_SHAPE((int64_t)k), ints))
                return false;
            for (size_t j = 0; j < k; j++)
                set_elem(out, (int64_t)j, ints ? t->ints[j] : onnx_to_int(t->floats[j]),
                         ints ? (double)t->ints[j] : t->floats[j]);
            return true;
        }
        return FAIL(im, NNCC_ERR_UNSUPPORTED, "a Constant without a value nncc reads");
    }
    /* The rest need every input constant. */
    for (size_t i = 0; i < n->n_input; i++)
        if (*n->input[i] && !in_const(im, n, i)) {
            *folded = false;
            return true;
        }
    if (!a) {
        *folded = false;
        return true;
    }
    if (strcmp(op, "Identity") == 0 || strcmp(op, "Cast") == 0 || strcmp(op, "Squeeze") == 0 ||
        strcmp(op, "Unsqueeze") == 0 || strcmp(op, "Reshape") == 0 || strcmp(op, "Flatten") == 0) {
        struct nncc_shape s = a->shape;
        if (strcmp(op, "Unsqueeze") == 0) {
            const Onnx__AttributeProto *ax = attr(n, "axes");
            int64_t axes[NNCC_MAX_RANK];
            int k = 0;
            if (ax)
                for (size_t j = 0; j < ax->n_ints && k < NNCC_MAX_RANK; j++)
                    axes[k++] = ax->ints[j];
            else if (b)
                for (int64_t j = 0; j < b->count && k < NNCC_MAX_RANK; j++)
                    axes[k++] = b->i[j];
            int r = s.rank + k;
            if (r >= NNCC_MAX_RANK)
                return FAIL(im, NNCC_ERR_UNSUPPORTED, "rank %d", r);
            bool ins[NNCC_MAX_RANK] = {false};
            for (int j = 0; j < k; j++)
                ins[axes[j] < 0 ? axes[j] + r : axes[j]] = true;
            struct nncc_shape o = {.rank = r};
            for (int j = 0, q = 0; j < r; j++)
                o.dim[j] = ins[j] ? 1 : s.dim[q++];
            s = o;
        } else if (strcmp(op, "Squeeze") == 0) {
            struct nncc_shape o = {0};
            for (int j = 0; j < s.rank; j++)
                if (s.dim[j] != 1)
                    o.dim[o.rank++] = s.dim[j];
            s = o;
        } else if (strcmp(op, "Reshape") == 0) {
            if (!b || b->count >= NNCC_MAX_RANK)
                return FAIL(im, NNCC_ERR_UNSUPPORTED, "a constant Reshape needs a constant shape");
            struct nncc_shape o = {.rank = (int)b->count};
            int infer = -1;
            int64_t known = 1;
            for (int j = 0; j < o.rank; j++) {
                if (b->i[j] < -1 || b->i[j] > ((int64_t)1 << 40) || (b->i[j] == 0 && j >= s.rank))
                    return FAIL(im, NNCC_ERR_SHAPE, "bad target dimension %lld",
                                (long long)b->i[j]);
                o.dim[j] = b->i[j] == 0 ? s.dim[j] : b->i[j];
                if (o.dim[j] == -1)
                    infer = j;
                else
                    known *= o.dim[j];
            }
            if (infer >= 0)
                o.dim[infer] = known ? a->count / known : 0;
            if (onnx_numel(o, 0) != a->count)
                return FAIL(im, NNCC_ERR_SHAPE, "cannot reshape %lld elements",
                            (long long)a->count);
            s = o;
        } else if (strcmp(op, "Flatten") == 0) {
            int64_t ax = attr_i(n, "axis", 1);
            ax = ax < 0 ? ax + s.rank : ax;
            int64_t lead = 1;
            for (int j = 0; j < ax && j < s.rank; j++)
                lead *= s.dim[j];
            s = NNCC_SHAPE(lead, lead ? a->count / lead : 0);
        }
        bool to_int = a->is_int;
        if (strcmp(op, "Cast") == 0) {
            int64_t to = attr_i(n, "to", 1);
            to_int = to != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT &&
                     to != ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE &&
                     to != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16;
        }
        if (!new_const(im, out, s, to_int))
            return false;
        for (int64_t k = 0; k < a->count; k++)
            set_elem(out, k, a->is_int ? a->i[k] : onnx_to_int(a->f[k]), a->is_int ? (double)a->i[k] : a->f[k]);
        return true;
    }
    if (strcmp(op, "Concat") == 0) {
        int64_t ax = attr_i(n, "axis", 0);
        if (a->shape.rank > 1 && ax != 0 && ax != -a->shape.rank) {
            *folded = false; /* only 1-D (shape vectors) folded */
            return true;
        }
        /* Along axis 0: every input has a's rank and trailing dims. */
        int64_t total = 0, rows = 0;
        for (size_t i = 0; i < n->n_input; i++) {
            const struct onnx_tensor *c = in_const(im, n, i);
            bool same = c->shape.rank == a->shape.rank;
            for (int d = 1; same && d < a->shape.rank; d++)
                same = c->shape.dim[d] == a->shape.dim[d];
            if (!same || (a->shape.rank > 0 && c->count == 0)) {
                *folded = false;
                return true;
            }
            total += c->count;
            rows += a->shape.rank > 0 ? c->shape.dim[0] : 1;
        }
        if (!new_const(im, out, NNCC_SHAPE(total), a->is_int))
            return false;
        int64_t k = 0;
        for (size_t i = 0; i < n->n_input; i++) {
            const struct onnx_tensor *c = in_const(im, n, i);
            for (int64_t j = 0; j < c->count; j++, k++)
                set_elem(out, k, c->i[j], c->f[j]);
        }
        if (a->shape.rank > 1) {
            out->shape = a->shape;
            out->shape.dim[0] = rows;
        }
        return true;
    }
    if (strcmp(op, "Gather") == 0 && b && a->shape.rank == 1) {
        if (!new_const(im, out, b->shape, a->is_int))
            return false;
        for (int64_t k = 0; k < b->count; k++) {
            int64_t j = b->i[k] < 0 ? b->i[k] + a->count : b->i[k];
            if (j < 0 || j >= a->count)
                return FAIL(im, NNCC_ERR_FORMAT, "index %lld is out of range", (long long)b->i[k]);
            set_elem(out, k, a->i[j], a->f[j]);
        }
        return true;
    }
    if (strcmp(op, "Slice") == 0 && a->shape.rank == 1) {
        const struct onnx_tensor *st = b, *en = in_const(im, n, 2), *sp = in_const(im, n, 4);
        int64_t s0, e0, step = sp ? sp->i[0] : 1;
        if (st && en) {
            s0 = st->i[0], e0 = en->i[0];
        } else {
            const Onnx__AttributeProto *sa = attr(n, "starts"), *ea = attr(n, "ends");
            if (!sa || !ea || !sa->n_ints || !ea->n_ints)
                return FAIL(im, NNCC_ERR_FORMAT, "starts and ends are missing");
            s0 = sa->ints[0], e0 = ea->ints[0];
        }
        if (step != 1) {
            *folded = false;
            return true;
        }
        int64_t d = a->count;
        s0 = s0 < 0 ? s0 + d : s0, e0 = e0 < 0 ? e0 + d : e0;
        s0 = s0 < 0 ? 0 : s0 > d ? d : s0, e0 = e0 < s0 ? s0 : e0 > d ? d : e0;
        if (!new_const(im, out, NNCC_SHAPE(e0 - s0), a->is_int))
            return false;
        for (int64_t k = s0; k < e0; k++)
            set_elem(out, k - s0, a->i[k], a->f[k]);
        return true;
    }
    bool arith = strcmp(op, "Add") == 0 || strcmp(op, "Sub") == 0 || strcmp(op, "Mul") == 0 ||
                 strcmp(op, "Div") == 0;
    if (arith && b && (a->count == b->count || a->count == 1 || b->count == 1)) {
        const struct onnx_tensor *big = a->count >= b->count ? a : b;
        if (!new_const(im, out, big->shape, a->is_int && b->is_int))
            return false;
        for (int64_t k = 0; k < big->count; k++) {
            int64_t x = a->i[a->count == 1 ? 0 : k], y = b->i[b->count == 1 ? 0 : k];
            double fx = a->f[a->count == 1 ? 0 : k], fy = b->f[b->count == 1 ? 0 : k];
            int64_t r = 0;
            double fr;
            bool over = false; /* int64 overflow is undefined: the result is unknown then */
            switch (op[0]) {
            case 'A': over = __builtin_add_overflow(x, y, &r), fr = fx + fy; break;
            case 'S': over = __builtin_sub_overflow(x, y, &r), fr = fx - fy; break;
            case 'M': over = __builtin_mul_overflow(x, y, &r), fr = fx * fy; break;
            default:
                over = y == 0 || (x == INT64_MIN && y == -1);
                r = over ? 0 : x / y, fr = fx / fy;
                break;
            }
            if (x <= UNKNOWN_DIM || y <= UNKNOWN_DIM || over)
                r = UNKNOWN_DIM;
            set_elem(out, k, r, out->is_int ? (double)r : fr);
        }
        return true;
    }
    if (strcmp(op, "Transpose") == 0) { /* old exporters transpose weights in the graph */
        int r = a->shape.rank;
        const Onnx__AttributeProto *pa = attr(n, "perm");
        int perm[NNCC_MAX_RANK];
        for (int j = 0; j < r; j++)
            perm[j] = pa && (size_t)j < pa->n_ints ? (int)pa->ints[j] : r - 1 - j;
        struct nncc_shape s = {.rank = r};
        for (int j = 0; j < r; j++) {
            if (perm[j] < 0 || perm[j] >= r)
                return FAIL(im, NNCC_ERR_FORMAT, "perm is not a permutation");
            s.dim[j] = a->shape.dim[perm[j]];
        }
        if (!new_const(im, out, s, a->is_int))
            return false;
        int64_t stride[NNCC_MAX_RANK], acc = 1;
        for (int j = r - 1; j >= 0; j--)
            stride[j] = acc, acc *= a->shape.dim[j];
        for (int64_t k = 0; k < out->count; k++) {
            int64_t rem = k, src = 0;
            for (int j = r - 1; j >= 0; j--) {
                src += (rem % s.dim[j]) * stride[perm[j]];
                rem /= s.dim[j];
            }
            set_elem(out, k, a->i[src], a->f[src]);
        }
        return true;
    }
    if (strcmp(op, "ConstantOfShape") == 0) {
        struct nncc_shape s = {.rank = (int)a->count};
        for (int64_t k = 0; k < a->count && k < NNCC_MAX_RANK; k++)
            s.dim[k] = a->i[k];
        if (a->count >= NNCC_MAX_RANK)
            return FAIL(im, NNCC_ERR_UNSUPPORTED, "rank %lld", (long long)a->count);
        const Onnx__AttributeProto *v = attr(n, "value");
        struct onnx_tensor fill = {0};
        if (v && v->t && !onnx_tensor_values(v->t, im->dir, &fill))
            return FAIL(im, nncc_last_status(), "%s", nncc_last_error());
        bool ok = new_const(im, out, s, fill.f ? fill.is_int : false);
        for (int64_t k = 0; ok && k < out->count; k++)
            set_elem(out, k, fill.i ? fill.i[0] : 0, fill.f ? fill.f[0] : 0.0);
        onnx_tensor_free(&fill);
        return ok;
    }
    *folded = false;
    return true;
}

/* ---- Nodes to layers ------------------------------------------------------ */

static bool put_ints(struct importer *im, struct onnx_node *on, const char *name,
                     const struct onnx_tensor *c, bool floats)
{
    if (on->n_attrs == ONNX_MAX_ATTRS || c->count > ONNX_MAX_INTS)
        return FAIL(im, NNCC_ERR_UNSUPPORTED, "%s has %lld values; nncc reads at most %d", name,
                    (long long)c->count, ONNX_MAX_INTS);
    struct onnx_attr *a = &on->attrs[on->n_attrs++];
    memset(a, 0, sizeof *a);
    snprintf(a->name, sizeof a->name, "%s", name);
    bool scalar = c->shape.rank == 0;
    a->kind = floats ? (scalar ? ONNX_ATTR_FLOAT : ONNX_ATTR_FLOATS)
                     : (scalar ? ONNX_ATTR_INT : ONNX_ATTR_INTS);
    a->n = (int)c->count;
    for (int64_t k = 0; k < c->count; k++) {
        a->ints[k] = c->i[k];
        a->floats[k] = c->f[k];
        if (!floats && c->i[k] == UNKNOWN_DIM)
            return FAIL(im, NNCC_ERR_UNSUPPORTED, "%s depends on the batch size", name);
    }
    return true;
}

/* The constant inputs read as attributes, per op: the attribute name of
 * input i (NULL: a weight), and whether it holds floats. */
static const char *const_attr(const char *op, size_t i, bool *floats)
{
    *floats = false;
    if (i == 0)
        return NULL;
    if (strcmp(op, "Reshape") == 0)
        return "shape";
    if (strcmp(op, "Squeeze") == 0 || strcmp(op, "Unsqueeze") == 0 ||
        strncmp(op, "Reduce", 6) == 0)
        return "axes";
    if (strcmp(op, "Split") == 0)
        return "split";
    if (strcmp(op, "Slice") == 0) {
        static const char *const names[] = {NULL, "starts", "ends", "axes", "steps"};
        return i < 5 ? names[i] : NULL;
    }
    if (strcmp(op, "Pad") == 0) {
        *floats = i == 2;
        return i == 1 ? "pads" : i == 2 ? "value" : "axes";
    }
    if (strcmp(op, "Clip") == 0) {
        *floats = true;
        return i == 1 ? "min" : "max";
    }
    if (strcmp(op, "Dropout") == 0) {
        *floats = i == 1;
        return i == 1 ? "ratio" : "training_mode";
    }
    return NULL;
}

static bool copy_attrs(struct importer *im, const Onnx__NodeProto *n, struct onnx_node *on)
{
    for (size_t i = 0; i < n->n_attribute; i++) {
        const Onnx__AttributeProto *p = n->attribute[i];
        if (!p->name || strlen(p->name) >= ONNX_ATTR_NAME)
            return FAIL(im, NNCC_ERR_FORMAT, "an attribute name is missing or too long");
        if (!onnx_op_reads_attr(on->op, p->name))
            return FAIL(im, NNCC_ERR_UNSUPPORTED, "attribute %s is not supported (of opset %d's %s)",
                        p->name, im->opset, n->op_type);
        if (on->n_attrs == ONNX_MAX_ATTRS)
            return FAIL(im, NNCC_ERR_UNSUPPORTED, "more than %d attributes", ONNX_MAX_ATTRS);
        struct onnx_attr *a = &on->attrs[on->n_attrs];
        memset(a, 0, sizeof *a);
        strcpy(a->name, p->name);
        int type = p->has_type ? (int)p->type : 0;
        switch (type) {
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT:
            a->kind = ONNX_ATTR_INT, a->ints[0] = p->i;
            break;
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT:
            a->kind = ONNX_ATTR_FLOAT, a->floats[0] = p->f;
            break;
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING:
            if (p->s.len >= ONNX_ATTR_NAME)
                return FAIL(im, NNCC_ERR_UNSUPPORTED, "attribute %s: a string of %zu bytes",
                            p->name, p->s.len);
            a->kind = ONNX_ATTR_STRING;
            if (p->s.len) /* an empty string has no data pointer */
                memcpy(a->s, p->s.data, p->s.len);
            break;
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS:
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS: {
            bool ints = type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
            size_t k = ints ? p->n_ints : p->n_floats;
            if (k > ONNX_MAX_INTS)
                return FAIL(im, NNCC_ERR_UNSUPPORTED, "attribute %s has %zu values; nncc reads "
                                                      "at most %d",
                            p->name, k, ONNX_MAX_INTS);
            a->kind = ints ? ONNX_ATTR_INTS : ONNX_ATTR_FLOATS;
            a->n = (int)k;
            for (size_t j = 0; j < k; j++) {
                if (ints)
                    a->ints[j] = p->ints[j];
                else
                    a->floats[j] = p->floats[j];
            }
            break;
        }
        default:
            if (strcmp(p->name, "value") == 0 && strcmp(n->op_type, "ConstantOfShape") == 0)
                continue;
            return FAIL(im, NNCC_ERR_UNSUPPORTED, "attribute %s of type %d (a tensor or graph) is "
                                                  "not supported",
                        p->name, type);
        }
        on->n_attrs++;
    }
    return true;
}

/* A layer name from the node's name (a leading "/" dropped: PyTorch's
 * "/conv1/Conv" → "conv1/Conv"), or "<op>_<index>". */
static void layer_name(const Onnx__NodeProto *n, size_t index, int part, char *buf, size_t size)
{
    const char *nm = n->name && *n->name ? n->name : NULL;
    while (nm && *nm == '/')
        nm++;
    if (nm && *nm && strlen(nm) < NNCC_MAX_NAME - 8)
        snprintf(buf, size, "%s", nm);
    else
        snprintf(buf, size, "%s_%zu", n->op_type, index);
    if (part >= 0) {
        size_t k = strlen(buf);
        snprintf(buf + k, size - k, ":%d", part);
    }
}

static bool output_used(const Onnx__GraphProto *g, const char *name)
{
    if (!*name)
        return false;
    for (size_t i = 0; i < g->n_node; i++)
        for (size_t j = 0; j < g->node[i]->n_input; j++)
            if (strcmp(g->node[i]->input[j], name) == 0)
                return true;
    for (size_t i = 0; i < g->n_output; i++)
        if (strcmp(g->output[i]->name, name) == 0)
            return true;
    return false;
}

static bool import_node(struct importer *im, const Onnx__NodeProto *n, size_t index)
{
    const Onnx__GraphProto *g = im->m->graph;
    int op = onnx_op_lookup(n->op_type);
    if (op < 0)
        return FAIL(im, NNCC_ERR_UNSUPPORTED, "op type %s is not supported by nncc", n->op_type);
    int mn, mx;
    onnx_op_arity(op, &mn, &mx);
    if ((int)n->n_input < mn || (int)n->n_input > mx)
        return FAIL(im, NNCC_ERR_FORMAT, "%zu inputs; %s takes %d to %d", n->n_input, n->op_type,
                    mn, mx);
    if (n->n_output < 1)
        return FAIL(im, NNCC_ERR_FORMAT, "no output");
    bool split = op == ONNX_OP_SPLIT;
    for (size_t j = 1; j < n->n_output && !split; j++)
        if (output_used(g, n->output[j]))
            return FAIL(im, NNCC_ERR_UNSUPPORTED, "output %zu (\"%s\") is used, but nncc computes "
                                                  "only the first output of %s",
                        j, n->output[j], n->op_type);
    struct onnx_node *on = calloc(1, sizeof *on);
    if (!on)
        return FAIL(im, NNCC_ERR_NOMEM, "out of memory");
    on->op = op;
    on->opset = im->opset;
    on->whole = im->whole;
    bool ok = copy_attrs(im, n, on);
    /* Before opset 7 batch normalization and dropout trained unless told
     * is_test. */
    if (ok && im->opset < 7 && (op == ONNX_OP_BATCHNORM || op == ONNX_OP_DROPOUT) &&
        onnx_attr_int(on, "is_test", 0) == 0)
        ok = FAIL(im, NNCC_ERR_UNSUPPORTED, "is_test 0 (training) is not supported");
    nncc_tensor *tensors[ONNX_MAX_INPUTS];
    int n_t = 0;
    for (size_t i = 0; ok && i < n->n_input; i++) {
        const char *nm = n->input[i];
        if (!*nm && (int)i < mn) { /* only optional inputs may be left out */
            ok = FAIL(im, NNCC_ERR_FORMAT, "input %zu is required but left out (\"\")", i);
            break;
        }
        if (!*nm) {
            on->src[on->n_in++] = ONNX_SRC_ABSENT;
            continue;
        }
        struct value *v = find(im, nm);
        if (!v) {
            ok = FAIL(im, NNCC_ERR_FORMAT, "input \"%s\" is not defined before the node", nm);
            break;
        }
        bool floats;
        const char *an = const_attr(n->op_type, i, &floats);
        if (!v->is_const && an) {
            ok = FAIL(im, NNCC_ERR_UNSUPPORTED, "input %zu (%s, \"%s\") is computed at run time; "
                                                "nncc needs it constant",
                      i, an, nm);
            break;
        }
        if (!v->is_const) {
            on->src[on->n_in++] = ONNX_SRC_TENSOR;
            tensors[n_t++] = v->t;
            continue;
        }
        if (an) {
            ok = put_ints(im, on, an, &v->c, floats);
            on->src[on->n_in++] = ONNX_SRC_ABSENT;
            continue;
        }
        if (on->n_consts == LAYER_MAX_WEIGHTS) {
            ok = FAIL(im, NNCC_ERR_UNSUPPORTED, "more than %d constant inputs", LAYER_MAX_WEIGHTS);
            break;
        }
        if (v->c.count == 0) {
            ok = FAIL(im, NNCC_ERR_UNSUPPORTED, "constant \"%s\" is empty", nm);
            break;
        }
        struct onnx_const *k = &on->consts[on->n_consts];
        if (strlen(nm) > NNCC_MAX_NAME - 64) {
            ok = FAIL(im, NNCC_ERR_UNSUPPORTED, "constant name \"%.32s…\" is too long", nm);
            break;
        }
        snprintf(k->name, sizeof k->name, "%s", nm);
        k->shape = v->c.shape;
        k->trainable = v->trainable;
        k->values = v->c.f;
        on->src[on->n_in++] = (signed char)on->n_consts++;
    }
    if (ok && n_t == 0)
        ok = FAIL(im, NNCC_ERR_UNSUPPORTED, "every input is a constant, and nncc does not fold "
                                            "%s on constants",
                  n->op_type);
    if (ok && op == ONNX_OP_DROPOUT && onnx_attr_int(on, "training_mode", 0) != 0)
        ok = FAIL(im, NNCC_ERR_UNSUPPORTED, "training_mode 1");
    int parts = split ? (int)n->n_output : 1;
    if (ok && split && !onnx_attr(on, "split")) { /* equal parts */
        struct onnx_attr *a = &on->attrs[on->n_attrs < ONNX_MAX_ATTRS ? on->n_attrs++ : 0];
        memset(a, 0, sizeof *a);
        strcpy(a->name, "num_outputs");
        a->kind = ONNX_ATTR_INT;
        a->ints[0] = parts;
    }
    for (int p = 0; ok && p < parts; p++) {
        if (split) { /* one layer per output, told which */
            int k = on->n_attrs;
            if (p == 0) {
                if (k == ONNX_MAX_ATTRS) {
                    ok = FAIL(im, NNCC_ERR_UNSUPPORTED, "too many attributes");
                    break;
                }
                on->n_attrs++;
            } else {
                k = on->n_attrs - 1;
            }
            struct onnx_attr *a = &on->attrs[k];
            memset(a, 0, sizeof *a);
            strcpy(a->name, "split_index");
            a->kind = ONNX_ATTR_INT;
            a->ints[0] = p;
            if (!*n->output[p])
                continue;
        }
        char name[NNCC_MAX_NAME + 1];
        layer_name(n, index, split ? p : -1, name, sizeof name);
        nncc_layer *l = onnx_layer_new(on, name);
        nncc_tensor *y = l ? nncc_call_n(l, tensors, n_t) : NULL;
        if (!y) {
            if (l && !nncc_layer_num_nodes(l))
                nncc_layer_free(l);
            char msg[1200];
            snprintf(msg, sizeof msg, "%s", nncc_last_error());
            ok = FAIL(im, nncc_last_status(), "%s", msg);
            break;
        }
        struct value *v = add_value(im, n->output[p]);
        if (!v) {
            ok = false;
            break;
        }
        v->t = y;
    }
    free(on);
    return ok;
}

/* ---- The graph ------------------------------------------------------------ */

static bool import_inputs(struct importer *im, nncc_tensor **inputs, int *n_inputs)
{
    const Onnx__GraphProto *g = im->m->graph;
    *n_inputs = 0;
    int k = 0;
    for (size_t i = 0; i < g->n_input; i++) {
        const Onnx__ValueInfoProto *vi = g->input[i];
        if (!vi->name || find(im, vi->name)) /* an initializer: a constant */
            continue;
        snprintf(im->who, sizeof im->who, "input \"%.*s\"", NNCC_MAX_NAME, vi->name);
        const Onnx__TypeProto *tp = vi->type;
        if (!tp || tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type)
            return FAIL(im, NNCC_ERR_UNSUPPORTED, "only tensor inputs are supported");
        const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
        int dt = tt->has_elem_type ? tt->elem_type : 0;
        if (dt == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16 || dt == ONNX__TENSOR_PROTO__DATA_TYPE__STRING ||
            dt == ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16 || dt >= ONNX__TENSOR_PROTO__DATA_TYPE__COMPLEX64 ||
            dt == 0)
            return FAIL(im, NNCC_ERR_UNSUPPORTED, "data type %s (nncc computes in float32; "
                                                  "integer inputs are read as floats)",
                        onnx_dtype_name(dt));
        bool zero = false; /* an empty input: a constant, below */
        for (size_t d = 0; tt->shape && d < tt->shape->n_dim; d++)
            zero |= tt->shape->dim[d]->value_case ==
                        ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE &&
                    tt->shape->dim[d]->dim_value == 0;
        if (!zero && dt != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT &&
            dt != ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE) {
            /* nncc computes in float32: integers are exact there as indices,
             * not as data (integer division, wrap-around). */
            for (size_t j = 0; j < g->n_node; j++)
                for (size_t q = 0; q < g->node[j]->n_input; q++)
                    if (strcmp(g->node[j]->input[q], vi->name) == 0 &&
                        !(strcmp(g->node[j]->op_type, "Gather") == 0 && q == 1))
                        return FAIL(im, NNCC_ERR_UNSUPPORTED,
                                    "data type %s: nncc computes in float32, and reads integer "
                                    "inputs only as Gather's indices (node %zu, %s, uses it as "
                                    "input %zu)",
                                    onnx_dtype_name(dt), j, g->node[j]->op_type, q);
        }
        if (!tt->shape)
            return FAIL(im, NNCC_ERR_UNSUPPORTED, "the shape is not given; use --input-shape");
        const Onnx__TensorShapeProto *sp = tt->shape;
        struct nncc_shape s = {.rank = (int)sp->n_dim};
        if (s.rank + (im->whole ? 1 : 0) >= NNCC_MAX_RANK)
            return FAIL(im, NNCC_ERR_UNSUPPORTED, "rank %d is more than nncc supports", s.rank);
        const struct nncc_shape *fix = k < im->o.n_input_shapes ? &im->o.input_shapes[k] : NULL;
        if (fix && fix->rank != s.rank)
            return FAIL(im, NNCC_ERR_ARG, "the given shape has rank %d; the input has rank %d",
                        fix->rank, s.rank);
        for (int d = 0; d < s.rank; d++) {
            const Onnx__TensorShapeProto__Dimension *dim = sp->dim[d];
            bool known = dim->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE &&
                         dim->dim_value >= 0;
            s.dim[d] = known ? dim->dim_value : NNCC_NONE;
            if (fix && fix->dim[d] > 0)
                s.dim[d] = fix->dim[d];
            if (s.dim[d] == NNCC_NONE && (d > 0 || im->whole))
                return FAIL(im, NNCC_ERR_UNSUPPORTED, "dimension %d is dynamic (%s); fix it with "
                                                      "--input-shape (or .input_shapes)",
                            d, dim->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM
                                   ? dim->dim_param : "unknown");
        }
        /* A fixed dimension of 0: the input can only be empty — a constant
         * (ReduceSum's axes = [], say). */
        bool empty = false;
        for (int d = 0; d < s.rank; d++)
            empty |= sp->dim[d]->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE &&
                     sp->dim[d]->dim_value == 0;
        if (empty) {
            struct value *v = add_value(im, vi->name);
            if (!v)
                return false;
            struct nncc_shape es = {.rank = s.rank};
            for (int d = 0; d < s.rank; d++)
                es.dim[d] = s.dim[d] < 0 ? 0 : s.dim[d];
            if (!new_const(im, &v->c, es, true))
                return false;
            v->is_const = true;
            continue;
        }
        if (s.rank == 0 && !im->whole)
            return FAIL(im, NNCC_ERR_UNSUPPORTED, "a scalar input has no batch axis");
        struct nncc_shape per = {.rank = im->whole ? s.rank : s.rank - 1};
        for (int d = 0; d < per.rank; d++)
            per.dim[d] = s.dim[im->whole ? d : d + 1];
        char name[NNCC_MAX_NAME + 1];
        snprintf(name, sizeof name, "%s", vi->name);
        nncc_tensor *t = nncc_input_(im->g, per, (struct nncc_input_opts){.name = name});
        if (!t) {
            char msg[1024];
            snprintf(msg, sizeof msg, "%s", nncc_last_error());
            return FAIL(im, nncc_last_status(), "%s", msg);
        }
        struct value *v = add_value(im, vi->name);
        if (!v)
            return false;
        v->t = t;
        if (*n_inputs == ONNX_MAX_INPUTS)
            return FAIL(im, NNCC_ERR_UNSUPPORTED, "more than %d inputs", ONNX_MAX_INPUTS);
        inputs[(*n_inputs)++] = t;
        k++;
    }
    im->who[0] = 0;
    if (*n_inputs == 0)
        return FAIL(im, NNCC_ERR_UNSUPPORTED, "the graph has no input computed at run time");
    return true;
}

static nncc_model *fail_early(struct importer *im)
{
    free_values(im);
    return NULL;
}

/* Builds the model in the current mode; NULL with the error set. */
static nncc_model *build(struct importer *im)
{
    const Onnx__GraphProto *g = im->m->graph;
    im->who[0] = 0;
    /* Fields every step below reads (absent optional strings are NULL). */
    for (size_t i = 0; i < g->n_node; i++)
        if (!g->node[i]->op_type) {
            FAIL(im, NNCC_ERR_FORMAT, "node %zu has no op type", i);
            return fail_early(im);
        }
    for (size_t i = 0; i < g->n_output; i++)
        if (!g->output[i]->name) {
            FAIL(im, NNCC_ERR_FORMAT, "graph output %zu has no name", i);
            return fail_early(im);
        }
    for (size_t i = 0; i < g->n_initializer; i++) {
        const Onnx__TensorProto *t = g->initializer[i];
        if (!t->name) {
            FAIL(im, NNCC_ERR_FORMAT, "initializer %zu has no name", i);
            return fail_early(im);
        }
        struct value *v = add_value(im, t->name);
        if (!v)
            return fail_early(im);
        v->is_const = true;
        v->trainable = true;
        if (!onnx_tensor_values(t, im->dir, &v->c)) {
            char msg[1024];
            snprintf(msg, sizeof msg, "%s", nncc_last_error());
            FAIL(im, nncc_last_status(), "%s", msg);
            return fail_early(im);
        }
    }
    for (int k = 0; k < im->o.n_constants; k++) {
        const char *nm = im->o.constant_names[k];
        const struct nncc_array *a = im->o.constant_values[k];
        if (!nm || !a) {
            FAIL(im, NNCC_ERR_ARG, "constant %d has no name or no value", k);
            return fail_early(im);
        }
        struct value *v = add_value(im, nm);
        if (!v || !new_const(im, &v->c, a->shape, false))
            return fail_early(im);
        v->is_const = true;
        for (int64_t i = 0; i < v->c.count; i++)
            set_elem(&v->c, i, onnx_to_int(a->data[i]), a->data[i]);
        /* Integral values are also usable as shapes and axes. */
        v->c.is_int = true;
        for (int64_t i = 0; i < v->c.count; i++)
            v->c.is_int &= a->data[i] == (float)onnx_to_int(a->data[i]);
    }
    im->g = nncc_graph_new();
    if (!im->g)
        return fail_early(im);
    nncc_tensor *inputs[ONNX_MAX_INPUTS], *outputs[ONNX_MAX_INPUTS];
    int n_in, n_out = 0;
    if (!import_inputs(im, inputs, &n_in))
        goto fail;
    for (size_t i = 0; i < g->n_node; i++) {
        const Onnx__NodeProto *n = g->node[i];
        if (!n->op_type) {
            FAIL(im, NNCC_ERR_FORMAT, "node %zu has no op type", i);
            goto fail;
        }
        snprintf(im->who, sizeof im->who, "node %zu (%s \"%.*s\")", i, n->op_type, NNCC_MAX_NAME,
                 n->name ? n->name : "");
        if (n->domain && *n->domain && strcmp(n->domain, "ai.onnx") != 0) {
            FAIL(im, NNCC_ERR_UNSUPPORTED, "operators of domain \"%s\" are not supported",
                 n->domain);
            goto fail;
        }
        struct onnx_tensor c;
        bool folded;
        if (!fold(im, n, &c, &folded))
            goto fail;
        if (folded) {
            if (n->n_output == 0) {
                onnx_tensor_free(&c);
                FAIL(im, NNCC_ERR_FORMAT, "no output");
                goto fail;
            }
            struct value *v = add_value(im, n->output[0]);
            if (!v) {
                onnx_tensor_free(&c);
                goto fail;
            }
            v->is_const = true;
            v->c = c;
            continue;
        }
        if (!import_node(im, n, i))
            goto fail;
    }
    for (size_t i = 0; i < g->n_output; i++) {
        const char *nm = g->output[i]->name ? g->output[i]->name : "";
        snprintf(im->who, sizeof im->who, "output \"%.*s\"", NNCC_MAX_NAME, nm);
        struct value *v = find(im, nm);
        if (!v) {
            FAIL(im, NNCC_ERR_FORMAT, "is not computed by any node");
            goto fail;
        }
        if (v->is_const) {
            FAIL(im, NNCC_ERR_UNSUPPORTED, "is a constant (it does not depend on the inputs)");
            goto fail;
        }
        nncc_tensor *t = v->t;
        const struct onnx_node *on = onnx_layer_node(nncc_tensor_layer(t));
        bool is_input = false;
        for (int k = 0; k < n_in; k++)
            is_input |= inputs[k] == t;
        if ((on && on->out_layout != ONNX_PLAIN) || is_input) {
            /* Back to ONNX's layout (or an output of its own). */
            struct onnx_node idn = {.op = ONNX_OP_IDENTITY, .opset = im->opset, .whole = im->whole,
                                    .n_in = 1, .src = {ONNX_SRC_TENSOR}, .n_attrs = 1};
            strcpy(idn.attrs[0].name, "plain");
            idn.attrs[0].kind = ONNX_ATTR_INT;
            idn.attrs[0].ints[0] = 1;
            char name[NNCC_MAX_NAME + 1];
            snprintf(name, sizeof name, "%.*s/output", NNCC_MAX_NAME - 8, nm);
            nncc_layer *l = onnx_layer_new(&idn, name);
            t = l ? nncc_call(l, t) : NULL;
            if (!t) {
                if (l && !nncc_layer_num_nodes(l))
                    nncc_layer_free(l);
                char msg[1024];
                snprintf(msg, sizeof msg, "%s", nncc_last_error());
                FAIL(im, nncc_last_status(), "%s", msg);
                goto fail;
            }
        }
        if (n_out == ONNX_MAX_INPUTS) {
            FAIL(im, NNCC_ERR_UNSUPPORTED, "more than %d outputs", ONNX_MAX_INPUTS);
            goto fail;
        }
        outputs[n_out++] = t;
    }
    im->who[0] = 0;
    if (n_out == 0) {
        FAIL(im, NNCC_ERR_FORMAT, "the graph has no output");
        goto fail;
    }
    char mname[NNCC_MAX_NAME + 1];
    snprintf(mname, sizeof mname, "%s", g->name && *g->name ? g->name : "onnx_model");
    for (char *p = mname; *p; p++)
        if (*p == '/' || *p == ' ')
            *p = '_';
    nncc_model *model = nncc_model_new_n_(inputs, n_in, outputs, n_out,
                                          (struct nncc_model_opts){.name = mname});
    if (!model) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", nncc_last_error());
        FAIL(im, nncc_last_status(), "%s", msg);
        nncc_graph_free(im->g);
    }
    im->g = NULL;
    free_values(im);
    return model;
fail:
    nncc_graph_free(im->g);
    im->g = NULL;
    free_values(im);
    return NULL;
}

nncc_model *nncc_load_onnx_(const char *path, struct nncc_onnx_opts o)
{
    if (!path)
        return NNCC_FAIL_NULL(NNCC_ERR_ARG, "nncc_load_onnx: path is NULL");
    if (o.n_input_shapes < 0 || (o.n_input_shapes > 0 && !o.input_shapes))
        return NNCC_FAIL_NULL(NNCC_ERR_ARG, "nncc_load_onnx: input_shapes is NULL or "
                                            "n_input_shapes negative");
    if (o.n_constants < 0 || (o.n_constants > 0 && (!o.constant_names || !o.constant_values)))
        return NNCC_FAIL_NULL(NNCC_ERR_ARG, "nncc_load_onnx: constant_names or constant_values "
                                            "is NULL, or n_constants negative");
    struct importer im = {.path = path, .o = o};
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", path);
    snprintf(im.dir, sizeof im.dir, "%s", dirname(tmp));
    if (!(im.m = onnx_model_read(path)))
        return NULL;
    /* The default domain's opset. */
    int opset = -1;
    for (size_t i = 0; i < im.m->n_opset_import; i++) {
        const Onnx__OperatorSetIdProto *s = im.m->opset_import[i];
        if ((!s->domain || !*s->domain || strcmp(s->domain, "ai.onnx") == 0) && s->has_version)
            opset = (int)s->version;
    }
    if (im.m->n_opset_import == 0)
        opset = 1; /* IR version 2 files have none: opset 1 */
    nncc_model *model = NULL;
    if (opset < 1 || opset > 17) {
        im.who[0] = 0;
        (void)im_fail(&im, NNCC_ERR_UNSUPPORTED, "opset %d; nncc reads opsets 1 to 17", opset);
    } else {
        im.opset = opset;
        model = build(&im);
        if (!model) {
            /* Again whole, when the inputs are static and the batch axis was
             * the trouble; the first error stands otherwise. */
            char first[1400];
            enum nncc_status st = nncc_last_status();
            snprintf(first, sizeof first, "%s", nncc_last_error());
            if (st == NNCC_ERR_UNSUPPORTED || st == NNCC_ERR_SHAPE) {
                im.whole = true;
                model = build(&im);
            }
            if (!model)
                nncc_fail(st, "%s", first);
        }
    }
    onnx_model_free(im.m);
    return model;
}
