/*
 * onnx_shape.c — lowering of ONNX's shape and data-movement operators:
 * Identity, Dropout, Flatten, Reshape, Squeeze, Unsqueeze, Transpose,
 * Concat, Split, Slice, Gather, Pad and ReduceMean/Sum/Max.
 *
 * Layouts (frontend/onnx.h): ops with an axis (Concat, Split, Slice, Pad,
 * Reduce) work on a CL tensor directly with the axis mapped to where it is
 * stored; a Transpose of a CL tensor is one transpose with the permutations
 * composed (none when they cancel, as in a model that converts to NHWC
 * itself); a Flatten or Reshape to (N, C·H·W) of a CL tensor is FLAT_CL, a
 * free view; the rest take PLAIN inputs.  With a batch axis, ONNX axis 0 can
 * be neither moved, reshaped nor reduced: those fail, and the importer then
 * retries the model whole when its inputs are static.
 */
#include <stdlib.h>
#include <string.h>
#include "onnx.h"

/* The stored axis of ONNX axis a of a rank-r value in `layout` (CL: 0 → 0,
 * 1 → r-1, i ≥ 2 → i-1), plus the sample axis when whole. */
static int stored_axis(const struct onnx_ctx *c, enum onnx_layout layout, int a, int r)
{
    if (layout == ONNX_CL)
        return a == 0 ? 0 : a == 1 ? r - 1 : a - 1;
    return a + (c->n->whole ? 1 : 0);
}

static int norm_axis(struct onnx_ctx *c, int64_t a, int r)
{
    if (a < -r || a >= r) {
        onnx_fail(c, NNCC_ERR_SHAPE, "axis %lld is out of range for rank %d", (long long)a, r);
        return -1;
    }
    return (int)(a < 0 ? a + r : a);
}

static bool batch_axis(struct onnx_ctx *c, int a, const char *what)
{
    if (a == 0 && !c->n->whole) {
        onnx_fail(c, NNCC_ERR_UNSUPPORTED, "%s axis 0, the batch axis", what);
        return true;
    }
    return false;
}

nncc_tensor *onnx_lower_identity(struct onnx_ctx *c)
{
    struct onnx_value x;
    if (!onnx_tensor_input(c, 0, &x))
        return NULL;
    if (c->n->op == ONNX_OP_DROPOUT) {
        float rate = onnx_attr_float(c->n, "ratio", 0.5f);
        if (!(rate >= 0.0f && rate < 1.0f))
            return onnx_fail(c, NNCC_ERR_FORMAT, "ratio must be in [0, 1), got %g", (double)rate);
        /* Identity at inference; fit trains with it like the framework did. */
        struct ir_attrs a = {.rate = rate};
        x.t = onnx_node_add(c, IR_DROPOUT, &x.t, 1, &a, "dropout");
        return onnx_output(c, &x);
    }
    /* The importer's own Identity on an output ("plain"): ONNX's layout. */
    if (onnx_attr_int(c->n, "plain", 0) && x.layout != ONNX_PLAIN)
        return onnx_to_plain(c, &x) ? onnx_output(c, &x) : NULL;
    struct ir_attrs a = {.target = {.rank = x.t->shape.rank - 1}};
    for (int i = 1; i < x.t->shape.rank; i++)
        a.target.dim[i - 1] = x.t->shape.dim[i];
    x.t = onnx_node_add(c, IR_RESHAPE, &x.t, 1, &a, "identity");
    return onnx_output(c, &x);
}

/* The output shape of Flatten/Reshape/Squeeze/Unsqueeze on shape s. */
static bool reshaped(struct onnx_ctx *c, struct nncc_shape s, struct nncc_shape *o)
{
    const struct onnx_node *n = c->n;
    int64_t v[ONNX_MAX_INTS];
    int r = s.rank;
    *o = (struct nncc_shape){0};
    switch (n->op) {
    case ONNX_OP_FLATTEN: {
        int64_t a = onnx_attr_int(n, "axis", 1);
        if (a < -r || a > r)
            return onnx_fail(c, NNCC_ERR_SHAPE, "axis %lld is out of range", (long long)a), false;
        if (a < 0)
            a += r;
        bool batched = !n->whole && r > 0 && s.dim[0] == NNCC_NONE;
        if (batched && a != 1)
            return onnx_fail(c, NNCC_ERR_UNSUPPORTED, "axis %lld would merge the batch axis",
                             (long long)a), false;
        o->rank = 2;
        o->dim[0] = batched ? NNCC_NONE : onnx_numel(s, 0) / (a < r ? onnx_numel(s, (int)a) : 1);
        if (!batched) { /* product of the leading axes */
            o->dim[0] = 1;
            for (int i = 0; i < a; i++)
                o->dim[0] *= s.dim[i];
        }
        o->dim[1] = onnx_numel(s, (int)a);
        return true;
    }
    case ONNX_OP_RESHAPE: {
        int k = onnx_attr_ints(n, "shape", v, ONNX_MAX_INTS);
        if (k < 0)
            return onnx_fail(c, NNCC_ERR_UNSUPPORTED, "the target shape must be a constant"), false;
        if (k > NNCC_MAX_RANK - 1)
            return onnx_fail(c, NNCC_ERR_UNSUPPORTED, "rank %d is more than nncc supports", k),
                   false;
        bool allowzero = onnx_attr_int(n, "allowzero", 0) != 0;
        bool batched = !n->whole && r > 0 && s.dim[0] == NNCC_NONE;
        int infer = -1;
        int64_t known = 1;
        o->rank = k;
        for (int i = 0; i < k; i++) {
            int64_t d = v[i];
            if (d == INT64_MIN) { /* the batch size, from a folded Shape */
                if (!batched)
                    return onnx_fail(c, NNCC_ERR_SHAPE, "the batch size is not known here"), false;
                d = NNCC_NONE;
            } else if (d == 0 && !allowzero) {
                if (i >= r)
                    return onnx_fail(c, NNCC_ERR_SHAPE, "0 at %d copies no input axis", i), false;
                d = s.dim[i];
            } else if (d == -1) {
                if (infer >= 0)
                    return onnx_fail(c, NNCC_ERR_SHAPE, "two -1 in the target shape"), false;
                infer = i;
                continue;
            } else if (d <= 0) {
                return onnx_fail(c, NNCC_ERR_UNSUPPORTED, "target dimension %lld", (long long)d),
                       false;
            }
            o->dim[i] = d;
            if (d != NNCC_NONE)
                known *= d;
        }
        int64_t total = batched ? onnx_numel(s, 1) : onnx_numel(s, 0);
        bool out_batched = k > 0 && o->dim[0] == NNCC_NONE;
        if (batched && !out_batched && infer == 0) {
            o->dim[0] = NNCC_NONE;
            out_batched = true;
            infer = -1;
        }
        if (batched != out_batched)
            return onnx_fail(c, NNCC_ERR_UNSUPPORTED, "the target shape does not keep axis 0 as "
                                                      "the batch axis"), false;
        if (infer >= 0) {
            if (known == 0 || total % known)
                return onnx_fail(c, NNCC_ERR_SHAPE, "cannot infer -1"), false;
            o->dim[infer] = total / known;
        } else if (known != total) {
            char s0[160];
            return onnx_fail(c, NNCC_ERR_SHAPE, "cannot reshape %s to %lld elements",
                             nncc_shape_str(s, s0, sizeof s0), (long long)known), false;
        }
        return true;
    }
    case ONNX_OP_SQUEEZE: {
        int k = onnx_attr_ints(n, "axes", v, ONNX_MAX_INTS);
        bool drop[NNCC_MAX_RANK] = {false};
        for (int i = 0; i < k; i++) {
            int a = norm_axis(c, v[i], r);
            if (a < 0)
                return false;
            if (s.dim[a] != 1)
                return onnx_fail(c, NNCC_ERR_SHAPE, "axis %d has size %lld, not 1", a,
                                 (long long)s.dim[a]), false;
            drop[a] = true;
        }
        for (int i = 0; k < 0 && i < r; i++)
            drop[i] = s.dim[i] == 1;
        for (int i = 0; i < r; i++)
            if (!drop[i])
                o->dim[o->rank++] = s.dim[i];
        return true;
    }
    case ONNX_OP_UNSQUEEZE: {
        int k = onnx_attr_ints(n, "axes", v, ONNX_MAX_INTS);
        if (k < 0)
            return onnx_fail(c, NNCC_ERR_FORMAT, "axes is missing"), false;
        int ro = r + k;
        if (ro > NNCC_MAX_RANK - 1)
            return onnx_fail(c, NNCC_ERR_UNSUPPORTED, "rank %d is more than nncc supports", ro),
                   false;
        bool ins[NNCC_MAX_RANK] = {false};
        for (int i = 0; i < k; i++) {
            int a = norm_axis(c, v[i], ro);
            if (a < 0)
                return false;
            ins[a] = true;
        }
        o->rank = ro;
        for (int i = 0, j = 0; i < ro; i++)
            o->dim[i] = ins[i] ? 1 : s.dim[j++];
        return true;
    }
    default: break;
    }
    return onnx_fail(c, NNCC_ERR_UNSUPPORTED, "not a reshape"), false;
}

nncc_tensor *onnx_lower_reshape(struct onnx_ctx *c)
{
    struct onnx_value x;
    if (!onnx_tensor_input(c, 0, &x))
        return NULL;
    struct nncc_shape o;
    if (!reshaped(c, x.shape, &o))
        return NULL;
    bool batched = !c->n->whole && x.shape.dim[0] == NNCC_NONE;
    if (batched && (o.rank < 1 || o.dim[0] != NNCC_NONE))
        return onnx_fail(c, NNCC_ERR_UNSUPPORTED, "the result does not keep axis 0 as the batch "
                                                  "axis");
    /* (N, C, S…) stored CL → (N, C·S…): keep the stored order (FLAT_CL). */
    if (x.layout == ONNX_CL && o.rank == 2 && batched) {
        struct nncc_shape from = x.shape;
        struct nncc_shape flat = {.rank = 2, .dim = {NNCC_NONE, onnx_numel(from, 1)}};
        struct ir_attrs a = {.target = NNCC_SHAPE(flat.dim[1])};
        x.t = onnx_node_add(c, IR_RESHAPE, &x.t, 1, &a, "flatten");
        x.shape = flat;
        x.layout = ONNX_FLAT_CL;
        x.flat_from = from;
        return onnx_output(c, &x);
    }
    if (!onnx_to_plain(c, &x) || !onnx_reshape(c, &x, o))
        return NULL;
    return onnx_output(c, &x);
}

nncc_tensor *onnx_lower_transpose(struct onnx_ctx *c)
{
    struct onnx_value x;
    if (!onnx_unflat_input(c, 0, &x))
        return NULL;
    int r = x.shape.rank;
    int64_t v[ONNX_MAX_INTS];
    int k = onnx_attr_ints(c->n, "perm", v, ONNX_MAX_INTS);
    int perm[NNCC_MAX_RANK];
    bool seen[NNCC_MAX_RANK] = {false};
    for (int i = 0; i < r; i++) {
        perm[i] = k < 0 ? r - 1 - i : (int)v[i];
        if (perm[i] < 0 || perm[i] >= r || seen[perm[i]] || (k >= 0 && k != r))
            return onnx_fail(c, NNCC_ERR_FORMAT, "perm is not a permutation of %d axes", r);
        seen[perm[i]] = true;
    }
    /* IR axis i of the result takes the stored axis holding ONNX axis perm[i]. */
    int off = c->n->whole ? 1 : 0, q[NNCC_MAX_RANK];
    struct nncc_shape out = {.rank = r};
    bool identity = true;
    q[0] = 0;
    for (int i = 0; i < r; i++) {
        q[i + off] = stored_axis(c, x.layout, perm[i], r);
        out.dim[i] = x.shape.dim[perm[i]];
        identity &= q[i + off] == i + off;
    }
    if (!off && q[0] != 0)
        return onnx_fail(c, NNCC_ERR_UNSUPPORTED, "perm moves axis 0, the batch axis");
    struct ir_attrs a = {0};
    if (identity) { /* the stored order is already the result's */
        a.target.rank = x.t->shape.rank - 1;
        for (int i = 1; i < x.t->shape.rank; i++)
            a.target.dim[i - 1] = x.t->shape.dim[i];
        x.t = onnx_node_add(c, IR_RESHAPE, &x.t, 1, &a, "transpose");
    } else {
        for (int i = 0; i < r + off; i++)
            a.perm[i] = q[i];
        x.t = onnx_node_add(c, IR_TRANSPOSE, &x.t, 1, &a, "transpose");
    }
    x.shape = out;
    x.layout = ONNX_PLAIN;
    return onnx_output(c, &x);
}

nncc_tensor *onnx_lower_concat(struct onnx_ctx *c)
{
    int n = c->n->n_in;
    struct onnx_value v[ONNX_MAX_INPUTS];
    bool all_cl = true;
    for (int i = 0; i < n; i++) {
        if (!onnx_tensor_input(c, i, &v[i]))
            return NULL;
        all_cl &= v[i].layout == ONNX_CL;
    }
    int r = v[0].shape.rank;
    int a = norm_axis(c, onnx_attr_int(c->n, "axis", 1), r);
    if (a < 0 || batch_axis(c, a, "concatenation along"))
        return NULL;
    nncc_tensor *in[ONNX_MAX_INPUTS];
    struct onnx_value out = v[0];
    out.shape.dim[a] = 0;
    for (int i = 0; i < n; i++) {
        if (!all_cl && !onnx_to_plain(c, &v[i]))
            return NULL;
        in[i] = v[i].t;
        out.shape.dim[a] += v[i].shape.dim[a];
    }
    struct ir_attrs at = {.axis = stored_axis(c, all_cl ? ONNX_CL : ONNX_PLAIN, a, r)};
    out.layout = all_cl ? ONNX_CL : ONNX_PLAIN;
    out.t = onnx_node_add(c, IR_CONCAT, in, n, &at, "concat");
    return onnx_output(c, &out);
}

/* Slice's clamping: the first index taken and the exclusive end (for a
 * negative step, end may be -1: down to index 0 inclusive). */
static void clamp_slice(int64_t dim, int64_t step, int64_t *start, int64_t *end)
{
    int64_t s = *start, e = *end;
    if (s < 0)
        s += dim;
    if (e < 0 && e > INT64_MIN / 2)
        e += dim;
    if (step > 0) {
        s = s < 0 ? 0 : s > dim ? dim : s;
        e = e < 0 ? 0 : e > dim ? dim : e;
    } else {
        s = s < 0 ? -1 : s > dim - 1 ? dim - 1 : s;
        e = e < -1 ? -1 : e > dim - 1 ? dim - 1 : e;
    }
    *start = s;
    *end = e;
}

nncc_tensor *onnx_lower_slice(struct onnx_ctx *c)
{
    struct onnx_value x;
    if (!onnx_unflat_input(c, 0, &x))
        return NULL;
    int r = x.shape.rank;
    int64_t begin[NNCC_MAX_RANK], end[NNCC_MAX_RANK], step[NNCC_MAX_RANK];
    for (int i = 0; i < r; i++)
        begin[i] = 0, end[i] = x.shape.dim[i], step[i] = 1;
    if (c->n->op == ONNX_OP_SPLIT) {
        int a = norm_axis(c, onnx_attr_int(c->n, "axis", 0), r);
        if (a < 0 || batch_axis(c, a, "a split along"))
            return NULL;
        int64_t sizes[ONNX_MAX_INTS];
        int k = onnx_attr_ints(c->n, "split", sizes, ONNX_MAX_INTS);
        int64_t idx = onnx_attr_int(c->n, "split_index", 0), n_out = onnx_attr_int(c->n, "num_outputs", 1);
        if (k < 0) { /* equal parts */
            if (n_out < 1 || x.shape.dim[a] % n_out)
                return onnx_fail(c, NNCC_ERR_SHAPE, "%lld does not split into %lld equal parts",
                                 (long long)x.shape.dim[a], (long long)n_out);
            begin[a] = idx * (x.shape.dim[a] / n_out);
            end[a] = begin[a] + x.shape.dim[a] / n_out;
        } else {
            if (idx >= k)
                return onnx_fail(c, NNCC_ERR_FORMAT, "output %lld of %d", (long long)idx, k);
            int64_t off = 0;
            for (int i = 0; i < idx; i++)
                off += sizes[i];
            begin[a] = off;
            end[a] = off + sizes[idx];
        }
    } else {
        int64_t st[ONNX_MAX_INTS], en[ONNX_MAX_INTS], ax[ONNX_MAX_INTS], sp[ONNX_MAX_INTS];
        int ns = onnx_attr_ints(c->n, "starts", st, ONNX_MAX_INTS);
        int ne = onnx_attr_ints(c->n, "ends", en, ONNX_MAX_INTS);
        int na = onnx_attr_ints(c->n, "axes", ax, ONNX_MAX_INTS);
        int nsp = onnx_attr_ints(c->n, "steps", sp, ONNX_MAX_INTS);
        if (ns < 0 || ne != ns || (na >= 0 && na != ns) || (nsp >= 0 && nsp != ns))
            return onnx_fail(c, NNCC_ERR_UNSUPPORTED,
                             "starts, ends, axes and steps must be constants of one length");
        for (int i = 0; i < ns; i++) {
            int a = norm_axis(c, na >= 0 ? ax[i] : i, r);
            if (a < 0)
                return NULL;
            int64_t s = nsp >= 0 ? sp[i] : 1, b = st[i], e = en[i];
            if (s == 0)
                return onnx_fail(c, NNCC_ERR_FORMAT, "a step of 0");
            if (a == 0 && !c->n->whole) {
                bool all = s == 1 && (b == 0 || b <= INT64_MIN / 2) && e >= INT32_MAX;
                if (!all)
                    return onnx_fail(c, NNCC_ERR_UNSUPPORTED, "slicing axis 0, the batch axis");
                continue;
            }
            clamp_slice(x.shape.dim[a], s, &b, &e);
            begin[a] = b, end[a] = e, step[a] = s;
        }
    }
    /* The result's ONNX shape; an empty one is not supported. */
    struct onnx_value out = x;
    int n_cut = 0, cut = -1;
    for (int i = 0; i < r; i++) {
        if (i == 0 && !c->n->whole)
            continue;
        /* Without overflow for any int64 step (begin and end are clamped). */
        int64_t mag = step[i] > 0 ? step[i] : step[i] == INT64_MIN ? INT64_MAX : -step[i];
        int64_t span = step[i] > 0 ? end[i] - begin[i] : begin[i] - end[i];
        int64_t len = span > 0 ? 1 + (span - 1) / mag : 0;
        if (len <= 0)
            return onnx_fail(c, NNCC_ERR_UNSUPPORTED, "an empty result (axis %d) is not supported",
                             i);
        if (len != x.shape.dim[i] || step[i] != 1)
            n_cut++, cut = i;
        out.shape.dim[i] = len;
    }
    struct ir_attrs a = {0};
    if (n_cut <= 1 && (cut < 0 || step[cut] == 1)) {
        /* One axis, step 1: the IR's SLICE (a copy of a contiguous range). */
        int ax = cut < 0 ? r - 1 : cut;
        a.axis = stored_axis(c, x.layout, ax, r);
        a.offset = cut < 0 ? 0 : begin[cut];
        a.size = out.shape.dim[ax];
        if (a.axis == 0)
            return onnx_fail(c, NNCC_ERR_UNSUPPORTED, "slicing axis 0, the batch axis");
        out.t = onnx_node_add(c, IR_SLICE, &x.t, 1, &a, "slice");
        return onnx_output(c, &out);
    }
    int off = c->n->whole ? 1 : 0;
    if (off) {
        a.begin[0] = 0, a.end[0] = INT64_MAX, a.step[0] = 1;
    }
    for (int i = 0; i < r; i++) {
        int s = stored_axis(c, x.layout, i, r);
        a.begin[s] = begin[i], a.end[s] = end[i], a.step[s] = step[i];
        if (i == 0 && !off)
            a.begin[s] = 0, a.end[s] = INT64_MAX, a.step[s] = 1;
    }
    out.t = onnx_node_add(c, IR_STRIDED_SLICE, &x.t, 1, &a, "strided_slice");
    return onnx_output(c, &out);
}

nncc_tensor *onnx_lower_gather(struct onnx_ctx *c)
{
    struct onnx_value d, ix;
    int kd, ki;
    bool dt = onnx_input(c, 0, &d, &kd), it = onnx_input(c, 1, &ix, &ki);
    struct nncc_shape ds = dt ? d.shape : c->n->consts[kd].shape;
    struct nncc_shape is = it ? ix.shape : c->n->consts[ki].shape;
    int a = norm_axis(c, onnx_attr_int(c->n, "axis", 0), ds.rank);
    if (a < 0)
        return NULL;
    nncc_tensor *in[2];
    if (dt) {
        if (batch_axis(c, a, "gathering along") || !onnx_to_plain(c, &d))
            return NULL;
        in[0] = d.t;
    } else if (kd >= 0) {
        if (!(in[0] = onnx_weight(c, kd, ds, true, NULL)))
            return NULL;
    } else {
        return onnx_fail(c, NNCC_ERR_FORMAT, "data is absent");
    }
    if (it) {
        if (!onnx_to_plain(c, &ix))
            return NULL;
        in[1] = ix.t;
    } else if (ki >= 0) {
        if (!(in[1] = onnx_weight(c, ki, is, false, NULL)))
            return NULL;
    } else {
        return onnx_fail(c, NNCC_ERR_FORMAT, "indices are absent");
    }
    if (!dt && !it)
        return onnx_fail(c, NNCC_ERR_UNSUPPORTED, "both inputs are constants");
    if (dt && it)
        return onnx_fail(c, NNCC_ERR_UNSUPPORTED, "indices computed by the graph into data "
                                                  "computed by the graph (only into a constant, "
                                                  "as an embedding)");
    struct onnx_value out = {.layout = ONNX_PLAIN};
    out.shape.rank = ds.rank - 1 + is.rank;
    int o = 0;
    for (int i = 0; i < a; i++)
        out.shape.dim[o++] = ds.dim[i];
    for (int i = 0; i < is.rank; i++)
        out.shape.dim[o++] = is.dim[i];
    for (int i = a + 1; i < ds.rank; i++)
        out.shape.dim[o++] = ds.dim[i];
    if (out.shape.rank > NNCC_MAX_RANK - 1)
        return onnx_fail(c, NNCC_ERR_UNSUPPORTED, "the result's rank %d is too large",
                         out.shape.rank);
    struct ir_attrs at = {.axis = a + (c->n->whole && dt ? 1 : 0)};
    out.t = onnx_node_add(c, IR_GATHER, in, 2, &at, "gather");
    return onnx_output(c, &out);
}

nncc_tensor *onnx_lower_pad(struct onnx_ctx *c)
{
    struct onnx_value x;
    if (!onnx_unflat_input(c, 0, &x))
        return NULL;
    const char *mode = onnx_attr_string(c->n, "mode", "constant");
    if (strcmp(mode, "constant") != 0)
        return onnx_fail(c, NNCC_ERR_UNSUPPORTED, "mode \"%s\" (only constant)", mode);
    int r = x.shape.rank;
    int64_t p[ONNX_MAX_INTS];
    int k = onnx_attr_ints(c->n, "pads", p, ONNX_MAX_INTS);
    if (k != 2 * r)
        return onnx_fail(c, NNCC_ERR_UNSUPPORTED, "pads must be a constant of %d values", 2 * r);
    struct ir_attrs a = {.pad_value = onnx_attr_float(c->n, "value", 0.0f)};
    struct onnx_value out = x;
    for (int i = 0; i < r; i++) {
        if (p[i] < 0 || p[r + i] < 0)
            return onnx_fail(c, NNCC_ERR_UNSUPPORTED, "negative pads are not supported");
        if (i == 0 && !c->n->whole && (p[i] || p[r + i]))
            return onnx_fail(c, NNCC_ERR_UNSUPPORTED, "padding axis 0, the batch axis");
        int s = stored_axis(c, x.layout, i, r);
        a.pad_begin[s] = p[i];
        a.pad_end[s] = p[r + i];
        if (out.shape.dim[i] != NNCC_NONE)
            out.shape.dim[i] += p[i] + p[r + i];
    }
    out.t = onnx_node_add(c, IR_PAD, &x.t, 1, &a, "pad");
    return onnx_output(c, &out);
}

nncc_tensor *onnx_lower_reduce(struct onnx_ctx *c)
{
    struct onnx_value x;
    if (!onnx_unflat_input(c, 0, &x))
        return NULL;
    int r = x.shape.rank;
    bool keep = onnx_attr_int(c->n, "keepdims", 1) != 0;
    int64_t v[ONNX_MAX_INTS];
    int k = onnx_attr_ints(c->n, "axes", v, ONNX_MAX_INTS);
    if (k <= 0 && onnx_attr_int(c->n, "noop_with_empty_axes", 0))
        return onnx_lower_identity(c); /* no axes: nothing reduced */
    if (k == 0)
        k = -1; /* no axes: all of them */
    bool red[NNCC_MAX_RANK] = {false};
    for (int i = 0; i < (k < 0 ? r : k); i++) {
        int a = norm_axis(c, k < 0 ? i : v[i], r);
        if (a < 0 || batch_axis(c, a, "reducing"))
            return NULL;
        red[a] = true;
    }
    bool spatial_only = x.layout == ONNX_CL && !red[0] && !red[1];
    for (int i = 2; i < r; i++)
        spatial_only &= red[i];
    /* CL without keepdims keeps the stored order only when the spatial
     * axes go (leaving (N, C)). */
    if (x.layout == ONNX_CL && !keep && !spatial_only && !onnx_to_plain(c, &x))
        return NULL;
    struct onnx_value out = x;
    out.shape.rank = 0;
    for (int i = 0; i < r; i++) {
        if (!red[i])
            out.shape.dim[out.shape.rank++] = x.shape.dim[i];
        else if (keep)
            out.shape.dim[out.shape.rank++] = 1;
    }
    if (!keep)
        out.layout = ONNX_PLAIN;
    int fn = c->n->op == ONNX_OP_REDUCE_MEAN  ? IR_REDUCE_MEAN
             : c->n->op == ONNX_OP_REDUCE_SUM ? IR_REDUCE_SUM
                                              : IR_REDUCE_MAX;
    if (spatial_only && r == 4 && fn == IR_REDUCE_MEAN) { /* the fast global average pool */
        struct ir_attrs a = {.keepdims = keep};
        out.t = onnx_node_add(c, IR_GLOBAL_AVGPOOL2D, &x.t, 1, &a, "global_avgpool2d");
        return onnx_output(c, &out);
    }
    struct ir_attrs a = {.reduce = fn, .keepdims = keep};
    for (int i = 0; i < r; i++)
        if (red[i])
            a.reduce_axes |= 1u << stored_axis(c, x.layout, i, r);
    out.t = onnx_node_add(c, IR_REDUCE, &x.t, 1, &a, "reduce");
    return onnx_output(c, &out);
}
