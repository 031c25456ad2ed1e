/*
 * onnx_nn.c — lowering of ONNX Conv, ConvTranspose, MaxPool, AveragePool,
 * GlobalAveragePool, GlobalMaxPool, BatchNormalization, Gemm and MatMul.
 *
 * Convolutions and pools run channels-last: their input is converted to CL
 * (frontend/onnx.h) and their output stays CL, so a chain of them has no
 * transposes.  1-D ones (N, C, L) run as 2-D with H = 1.  Weights are
 * reordered once, at import: conv kernels OIHW → HWIO (IR CONV2D's layout),
 * Gemm/MatMul kernels to (in, out) with alpha folded in, and a kernel after a
 * FLAT_CL Flatten gets its rows permuted into the stored order.
 */
#include <stdlib.h>
#include <string.h>
#include "onnx.h"
#include "ir/eltwise.h"

/* The spatial attributes of a conv or pool over `ns` (1 or 2) axes, as the
 * IR's 2-D ones: kernel, stride, dilation, pad[4] = top, bottom, left, right. */
struct window {
    int64_t k[2], s[2], d[2], pb[2], pe[2];
};

/* Reads kernel_shape/strides/dilations/pads/auto_pad for input spatial
 * sizes in[]; kernel k0[] from the weights when given.  Without same_pads,
 * auto_pad SAME_* leaves the pads 0 (ConvTranspose resolves them itself). */
static bool window_of(struct onnx_ctx *c, int ns, const int64_t *in, const int64_t *k0,
                      bool same_pads, struct window *w)
{
    int64_t v[ONNX_MAX_INTS];
    for (int i = 0; i < 2; i++)
        w->k[i] = w->s[i] = w->d[i] = 1, w->pb[i] = w->pe[i] = 0;
    int n = onnx_attr_ints(c->n, "kernel_shape", v, ONNX_MAX_INTS);
    if (n < 0 && !k0)
        return onnx_fail(c, NNCC_ERR_FORMAT, "kernel_shape is missing"), false;
    if (n >= 0 && n != ns)
        return onnx_fail(c, NNCC_ERR_FORMAT, "kernel_shape has %d values for %d spatial axes", n,
                         ns), false;
    int off = 2 - ns; /* 1-D: the IR's H axis is 1 */
    for (int i = 0; i < ns; i++) {
        w->k[off + i] = n >= 0 ? v[i] : k0[i];
        if (k0 && w->k[off + i] != k0[i])
            return onnx_fail(c, NNCC_ERR_SHAPE, "kernel_shape %lld differs from the weights' %lld",
                             (long long)w->k[off + i], (long long)k0[i]), false;
    }
    static const char *const names[] = {"strides", "dilations"};
    for (int a = 0; a < 2; a++) {
        n = onnx_attr_ints(c->n, names[a], v, ONNX_MAX_INTS);
        if (n < 0)
            continue;
        if (n != ns)
            return onnx_fail(c, NNCC_ERR_FORMAT, "%s has %d values for %d spatial axes", names[a],
                             n, ns), false;
        for (int i = 0; i < ns; i++) {
            if (v[i] < 1)
                return onnx_fail(c, NNCC_ERR_FORMAT, "%s must be positive, got %lld", names[a],
                                 (long long)v[i]), false;
            (a ? w->d : w->s)[off + i] = v[i];
        }
    }
    for (int i = 0; i < 2; i++)
        if (w->k[i] < 1 || w->k[i] > 65536 || w->s[i] > 65536 || w->d[i] > 65536)
            return onnx_fail(c, NNCC_ERR_FORMAT, "kernel %lld, stride %lld, dilation %lld: out of "
                                                 "range",
                             (long long)w->k[i], (long long)w->s[i], (long long)w->d[i]), false;
    const char *ap = onnx_attr_string(c->n, "auto_pad", "NOTSET");
    if (strcmp(ap, "NOTSET") == 0) {
        n = onnx_attr_ints(c->n, "pads", v, ONNX_MAX_INTS);
        if (n >= 0 && n != 2 * ns)
            return onnx_fail(c, NNCC_ERR_FORMAT, "pads has %d values for %d spatial axes", n, ns),
                   false;
        for (int i = 0; n >= 0 && i < ns; i++) {
            if (v[i] < 0 || v[ns + i] < 0)
                return onnx_fail(c, NNCC_ERR_UNSUPPORTED, "negative pads are not supported"), false;
            if (v[i] > 65536 || v[ns + i] > 65536)
                return onnx_fail(c, NNCC_ERR_FORMAT, "pads %lld, %lld: out of range",
                                 (long long)v[i], (long long)v[ns + i]), false;
            w->pb[off + i] = v[i];
            w->pe[off + i] = v[ns + i];
        }
    } else if (strcmp(ap, "SAME_UPPER") == 0 || strcmp(ap, "SAME_LOWER") == 0) {
        for (int i = 0; same_pads && i < ns; i++) {
            int64_t s = w->s[off + i], x = in[i];
            int64_t out = (x + s - 1) / s;
            int64_t total = (out - 1) * s + (w->k[off + i] - 1) * w->d[off + i] + 1 - x;
            if (total < 0)
                total = 0;
            int64_t small = total / 2, big = total - small;
            w->pb[off + i] = ap[5] == 'U' ? small : big;
            w->pe[off + i] = ap[5] == 'U' ? big : small;
        }
    } else if (strcmp(ap, "VALID") != 0) {
        return onnx_fail(c, NNCC_ERR_FORMAT, "auto_pad \"%s\" is not an ONNX value", ap), false;
    }
    return true;
}

static void window_attrs(const struct window *w, struct ir_attrs *a)
{
    a->kernel[0] = (int)w->k[0], a->kernel[1] = (int)w->k[1];
    a->stride[0] = (int)w->s[0], a->stride[1] = (int)w->s[1];
    a->dilation[0] = (int)w->d[0], a->dilation[1] = (int)w->d[1];
    a->padding = NNCC_VALID;
    a->explicit_pad = true;
    a->pad[0] = (int)w->pb[0], a->pad[1] = (int)w->pe[0];
    a->pad[2] = (int)w->pb[1], a->pad[3] = (int)w->pe[1];
}

/* Input 0 as a CL tensor of rank 4 ((N, H, W, C) stored; 1-D gets H = 1);
 * *ns the ONNX spatial rank, sp[] the spatial sizes. */
static bool spatial_input(struct onnx_ctx *c, struct onnx_value *x, int *ns, int64_t *sp)
{
    if (!onnx_tensor_input(c, 0, x))
        return false;
    int r = x->shape.rank;
    if (r != 3 && r != 4) {
        char s0[160];
        onnx_fail(c, NNCC_ERR_UNSUPPORTED, "only 1-D and 2-D inputs (N, C, L) / (N, C, H, W) are "
                                           "supported, got %s",
                  nncc_shape_str(x->shape, s0, sizeof s0));
        return false;
    }
    *ns = r - 2;
    for (int i = 0; i < *ns; i++)
        sp[i] = x->shape.dim[2 + i];
    if (!onnx_to_cl(c, x))
        return false;
    if (r == 3) { /* (N, L, C) → (N, 1, L, C) */
        struct ir_attrs a = {.target = NNCC_SHAPE(1, sp[0], x->shape.dim[1])};
        x->t = onnx_node_add(c, IR_RESHAPE, &x->t, 1, &a, "to_2d");
    }
    return x->t != NULL;
}

/* The CL output of a rank-4 IR tensor y (N, H, W, C) for an op whose ONNX
 * input had ns spatial axes. */
static nncc_tensor *spatial_output(struct onnx_ctx *c, nncc_tensor *y, int ns)
{
    if (!y)
        return NULL;
    struct onnx_value v = {.t = y, .layout = ONNX_CL};
    struct nncc_shape s = y->shape;
    if (ns == 1) {
        struct ir_attrs a = {.target = NNCC_SHAPE(s.dim[2], s.dim[3])};
        if (!(v.t = onnx_node_add(c, IR_RESHAPE, &y, 1, &a, "to_1d")))
            return NULL;
        v.shape = (struct nncc_shape){.rank = 3, .dim = {s.dim[0], s.dim[3], s.dim[2]}};
    } else {
        v.shape = (struct nncc_shape){.rank = 4, .dim = {s.dim[0], s.dim[3], s.dim[1], s.dim[2]}};
    }
    return onnx_output(c, &v);
}

/* A bias constant (input 2) added on the channels (the last IR axis). */
static nncc_tensor *add_bias(struct onnx_ctx *c, nncc_tensor *y, int input, int64_t channels)
{
    struct onnx_value v;
    int k;
    if (!y || onnx_input(c, input, &v, &k) || k < 0) {
        if (y && v.t && k < 0 && input < c->n->n_in && c->n->src[input] == ONNX_SRC_TENSOR)
            return onnx_fail(c, NNCC_ERR_UNSUPPORTED, "a bias computed by the graph is not "
                                                      "supported (it must be a constant)");
        return y;
    }
    nncc_tensor *b = onnx_weight(c, k, NNCC_SHAPE(channels), true, NULL);
    if (!b)
        return NULL;
    nncc_tensor *in[2] = {y, b};
    return onnx_node_add(c, IR_BIAS_ADD, in, 2, NULL, "bias_add");
}

static int constant_input(struct onnx_ctx *c, int i, const char *what)
{
    struct onnx_value v;
    int k;
    if (onnx_input(c, i, &v, &k) || k < 0) {
        onnx_fail(c, NNCC_ERR_UNSUPPORTED, "the %s (input %d) must be a constant initializer", what,
                  i);
        return -1;
    }
    return k;
}

/* A 4-D ONNX kernel constant k of shape (A, B, kh, kw) as the IR's
 * (kh, kw, B, A): Conv's OIHW → HWIO (A = out, B = in/groups) and
 * ConvTranspose's (in, out/groups, …) → (kh, kw, out/groups, in) alike. */
static nncc_tensor *kernel_hwba(struct onnx_ctx *c, int k, int64_t na, int64_t nb, int64_t kh,
                                int64_t kw)
{
    int64_t *perm = NULL;
    if (c->n->consts[k].values) {
        perm = malloc((size_t)(kh * kw * nb * na) * sizeof *perm);
        if (!perm)
            return onnx_fail(c, NNCC_ERR_NOMEM, "out of memory");
        for (int64_t i = 0; i < kh; i++)
            for (int64_t j = 0; j < kw; j++)
                for (int64_t b = 0; b < nb; b++)
                    for (int64_t a = 0; a < na; a++)
                        perm[((i * kw + j) * nb + b) * na + a] = ((a * nb + b) * kh + i) * kw + j;
    }
    nncc_tensor *w = onnx_weight(c, k, NNCC_SHAPE(kh, kw, nb, na), true, perm);
    free(perm);
    return w;
}

nncc_tensor *onnx_lower_conv(struct onnx_ctx *c)
{
    struct onnx_value x;
    int ns;
    int64_t sp[2];
    int kw = constant_input(c, 1, "weight");
    if (kw < 0 || !spatial_input(c, &x, &ns, sp))
        return NULL;
    struct nncc_shape ws = c->n->consts[kw].shape; /* (M, C/g, k…) */
    int64_t groups = onnx_attr_int(c->n, "group", 1), ch = x.shape.dim[1];
    if (ws.rank != ns + 2)
        return onnx_fail(c, NNCC_ERR_SHAPE, "the weight has rank %d; expected %d", ws.rank, ns + 2);
    if (groups < 1 || ch % groups || ws.dim[0] % groups || ws.dim[1] * groups != ch)
        return onnx_fail(c, NNCC_ERR_SHAPE,
                         "group %lld does not fit %lld input channels and a weight of %lld×%lld",
                         (long long)groups, (long long)ch, (long long)ws.dim[0],
                         (long long)ws.dim[1]);
    struct window w;
    if (!window_of(c, ns, sp, &ws.dim[2], true, &w))
        return NULL;
    int64_t m = ws.dim[0];
    nncc_tensor *wt = kernel_hwba(c, kw, m, ws.dim[1], w.k[0], w.k[1]);
    if (!wt)
        return NULL;
    struct ir_attrs a = {0};
    window_attrs(&w, &a);
    a.groups = (int)groups;
    nncc_tensor *in[2] = {x.t, wt};
    nncc_tensor *y = onnx_node_add(c, IR_CONV2D, in, 2, &a, "conv2d");
    return spatial_output(c, add_bias(c, y, 2, m), ns);
}

nncc_tensor *onnx_lower_conv_transpose(struct onnx_ctx *c)
{
    struct onnx_value x;
    int ns;
    int64_t sp[2];
    int kw = constant_input(c, 1, "weight");
    if (kw < 0 || !spatial_input(c, &x, &ns, sp))
        return NULL;
    struct nncc_shape ws = c->n->consts[kw].shape; /* (C, M/g, k…) */
    int64_t groups = onnx_attr_int(c->n, "group", 1), ch = x.shape.dim[1];
    if (ws.rank != ns + 2 || ws.dim[0] != ch || groups < 1 || ch % groups)
        return onnx_fail(c, NNCC_ERR_SHAPE, "the weight does not fit %lld input channels in %lld "
                                            "groups",
                         (long long)ch, (long long)groups);
    struct window w;
    const char *ap = onnx_attr_string(c->n, "auto_pad", "NOTSET");
    /* SAME_* mean something else here (output = input × stride): resolved
     * below with output_shape. */
    bool same = strncmp(ap, "SAME", 4) == 0;
    if (!window_of(c, ns, sp, &ws.dim[2], false, &w))
        return NULL;
    int off = 2 - ns;
    int64_t opad[2] = {0, 0}, v[ONNX_MAX_INTS], oshape[2];
    int n = onnx_attr_ints(c->n, "output_padding", v, ONNX_MAX_INTS);
    for (int i = 0; i < n && i < ns; i++)
        opad[off + i] = v[i];
    n = onnx_attr_ints(c->n, "output_shape", v, ONNX_MAX_INTS);
    if (n >= 0 || same) {
        if (n >= 0 && n != ns && n != ns + 2)
            return onnx_fail(c, NNCC_ERR_FORMAT, "output_shape has %d values", n);
        for (int i = 0; i < ns; i++) {
            int64_t full = w.s[off + i] * (sp[i] - 1) + opad[off + i] +
                           (w.k[off + i] - 1) * w.d[off + i] + 1;
            oshape[i] = n >= 0 ? v[n - ns + i] : sp[i] * w.s[off + i];
            int64_t total = full - oshape[i];
            if (total < 0) { /* larger than the full output: rows of zeros-but-bias at the end */
                opad[off + i] += -total;
                total = 0;
            }
            int64_t small = total / 2, big = total - small;
            if (strcmp(ap, "SAME_UPPER") == 0)
                w.pb[off + i] = small, w.pe[off + i] = big;
            else if (strcmp(ap, "SAME_LOWER") == 0)
                w.pb[off + i] = big, w.pe[off + i] = small;
            else
                w.pb[off + i] = 0, w.pe[off + i] = total;
        }
    }
    int64_t m = ws.dim[1] * groups;
    nncc_tensor *wt = kernel_hwba(c, kw, ch, ws.dim[1], w.k[0], w.k[1]);
    if (!wt)
        return NULL;
    struct ir_attrs a = {0};
    window_attrs(&w, &a);
    a.groups = (int)groups;
    a.output_padding[0] = (int)opad[0];
    a.output_padding[1] = (int)opad[1];
    nncc_tensor *in[2] = {x.t, wt};
    nncc_tensor *y = onnx_node_add(c, IR_CONV2D_TRANSPOSE, in, 2, &a, "conv2d_transpose");
    return spatial_output(c, add_bias(c, y, 2, m), ns);
}

nncc_tensor *onnx_lower_pool(struct onnx_ctx *c)
{
    struct onnx_value x;
    int ns;
    int64_t sp[2];
    if (!spatial_input(c, &x, &ns, sp))
        return NULL;
    struct window w;
    if (!window_of(c, ns, sp, NULL, true, &w))
        return NULL;
    bool max = c->n->op == ONNX_OP_MAXPOOL;
    if (!max && (w.d[0] != 1 || w.d[1] != 1))
        return onnx_fail(c, NNCC_ERR_UNSUPPORTED, "AveragePool with dilations is not supported");
    if (max && onnx_attr_int(c->n, "storage_order", 0) != 0)
        return onnx_fail(c, NNCC_ERR_UNSUPPORTED, "storage_order 1 is not supported");
    struct ir_attrs a = {0};
    window_attrs(&w, &a);
    a.ceil_mode = onnx_attr_int(c->n, "ceil_mode", 0) != 0;
    a.count_include_pad = onnx_attr_int(c->n, "count_include_pad", 0) != 0;
    nncc_tensor *y = onnx_node_add(c, max ? IR_MAXPOOL2D : IR_AVGPOOL2D, &x.t, 1, &a,
                                   max ? "maxpool2d" : "avgpool2d");
    return spatial_output(c, y, ns);
}

nncc_tensor *onnx_lower_global_pool(struct onnx_ctx *c)
{
    struct onnx_value x;
    int ns;
    int64_t sp[2];
    if (!spatial_input(c, &x, &ns, sp))
        return NULL;
    bool max = c->n->op == ONNX_OP_GLOBAL_MAXPOOL;
    struct ir_attrs a = {.keepdims = true, .pool_max = max};
    nncc_tensor *y = onnx_node_add(c, IR_GLOBAL_AVGPOOL2D, &x.t, 1, &a,
                                   max ? "global_maxpool2d" : "global_avgpool2d");
    return spatial_output(c, y, ns);
}

nncc_tensor *onnx_lower_batchnorm(struct onnx_ctx *c)
{
    struct onnx_value x;
    if (!onnx_tensor_input(c, 0, &x))
        return NULL;
    if (onnx_attr_int(c->n, "training_mode", 0) != 0)
        return onnx_fail(c, NNCC_ERR_UNSUPPORTED, "training_mode 1 (a training graph) is not "
                                                  "supported; export the model for inference");
    if (onnx_attr_int(c->n, "spatial", 1) != 1)
        return onnx_fail(c, NNCC_ERR_UNSUPPORTED, "spatial 0 is not supported");
    int r = x.shape.rank;
    if (r < 2)
        return onnx_fail(c, NNCC_ERR_SHAPE, "needs an input of rank >= 2, got %d", r);
    int64_t ch = x.shape.dim[1];
    if (r > 2 && !onnx_to_cl(c, &x))
        return NULL;
    if (r == 2 && !onnx_to_plain(c, &x))
        return NULL;
    /* ONNX inputs: X, scale, B, mean, var; IR: x, mean, var, gamma, beta. */
    int k[4];
    static const char *const what[] = {"scale", "bias", "mean", "variance"};
    for (int i = 0; i < 4; i++)
        if ((k[i] = constant_input(c, 1 + i, what[i])) < 0)
            return NULL;
    nncc_tensor *wt[4];
    for (int i = 0; i < 4; i++)
        if (!(wt[i] = onnx_weight(c, k[i], NNCC_SHAPE(ch), i < 2, NULL)))
            return NULL;
    struct ir_attrs a = {.axis = x.t->shape.rank - 1,
                         .epsilon = onnx_attr_float(c->n, "epsilon", 1e-5f),
                         .momentum = onnx_attr_float(c->n, "momentum", 0.9f),
                         .has_gamma = true,
                         .has_beta = true};
    nncc_tensor *in[5] = {x.t, wt[2], wt[3], wt[0], wt[1]};
    x.t = onnx_node_add(c, IR_BATCHNORM, in, 5, &a, "batchnorm");
    return onnx_output(c, &x);
}

/* A (K, P) kernel for x·W from a constant of ONNX shape ks (2-D), read
 * transposed when trans, scaled by alpha, rows permuted to x's FLAT_CL order
 * when x is FLAT_CL. */
static nncc_tensor *kernel_2d(struct onnx_ctx *c, int k, bool trans, float alpha,
                              const struct onnx_value *x)
{
    struct nncc_shape ks = c->n->consts[k].shape;
    int64_t kk = trans ? ks.dim[1] : ks.dim[0], p = trans ? ks.dim[0] : ks.dim[1];
    const struct onnx_const *cst = &c->n->consts[k];
    int64_t *perm = NULL;
    if (cst->values) {
        perm = malloc((size_t)(kk * p) * sizeof *perm);
        if (!perm)
            return onnx_fail(c, NNCC_ERR_NOMEM, "out of memory");
        /* Row r of the IR kernel is ONNX row src(r): FLAT_CL stores (S…, C). */
        int64_t chn = 1, sps = 1;
        if (x->layout == ONNX_FLAT_CL)
            chn = x->flat_from.dim[1], sps = onnx_numel(x->flat_from, 2);
        for (int64_t r = 0; r < kk; r++) {
            int64_t src = x->layout == ONNX_FLAT_CL ? (r % chn) * sps + r / chn : r;
            for (int64_t q = 0; q < p; q++)
                perm[r * p + q] = trans ? q * kk + src : src * p + q;
        }
    }
    bool importing = cst->values != NULL;
    nncc_tensor *w = onnx_weight(c, k, NNCC_SHAPE(kk, p), true, perm);
    free(perm);
    if (w && importing && alpha != 1.0f)
        for (int64_t i = 0; i < kk * p; i++)
            w->data[i] *= alpha;
    return w;
}

/* y + beta·C for a constant C of any shape that broadcasts to y's. */
static nncc_tensor *add_c(struct onnx_ctx *c, struct onnx_value *y, int kc, float beta)
{
    bool importing = c->n->consts[kc].values != NULL;
    struct nncc_shape cs = c->n->consts[kc].shape;
    nncc_tensor *w = onnx_weight(c, kc, cs, true, NULL);
    if (!w)
        return NULL;
    if (importing && beta != 1.0f)
        for (int64_t i = 0; i < onnx_numel(cs, 0); i++)
            w->data[i] *= beta;
    nncc_tensor *in[2] = {y->t, w};
    struct ir_attrs a = {.binary = IR_BINARY_ADD};
    y->t = onnx_node_add(c, IR_BINARY, in, 2, &a, "add_c");
    return onnx_output(c, y);
}

/* Gemm with transA: A's rows are not the batch, so only a model imported
 * whole gets here meaningfully: BATCH_MATMUL with trans_a (B a weight,
 * alpha folded in), then C. */
static nncc_tensor *gemm_general(struct onnx_ctx *c, struct onnx_value *a, int kb, float alpha,
                                 float beta, bool ta, bool tb)
{
    if (!c->n->whole)
        return onnx_fail(c, NNCC_ERR_UNSUPPORTED, "transA 1 with A computed by the graph "
                                                  "(its rows are the batch) is not supported");
    if (!onnx_to_plain(c, a))
        return NULL;
    bool importing = c->n->consts[kb].values != NULL;
    struct nncc_shape bs = c->n->consts[kb].shape;
    nncc_tensor *w = onnx_weight(c, kb, bs, true, NULL);
    if (!w)
        return NULL;
    if (importing && alpha != 1.0f)
        for (int64_t i = 0; i < onnx_numel(bs, 0); i++)
            w->data[i] *= alpha;
    struct ir_attrs at = {.trans_a = ta, .trans_b = tb};
    nncc_tensor *in[2] = {a->t, w};
    struct onnx_value y = {.t = onnx_node_add(c, IR_BATCH_MATMUL, in, 2, &at, "batch_matmul"),
                           .shape = {.rank = 2,
                                     .dim = {ta ? a->shape.dim[1] : a->shape.dim[0],
                                             tb ? bs.dim[0] : bs.dim[1]}}};
    if (!y.t)
        return NULL;
    struct onnx_value cv;
    int kc;
    if (onnx_input(c, 2, &cv, &kc))
        return onnx_fail(c, NNCC_ERR_UNSUPPORTED, "C computed by the graph is not supported");
    if (kc < 0 || beta == 0.0f)
        return onnx_output(c, &y);
    return add_c(c, &y, kc, beta);
}

nncc_tensor *onnx_lower_gemm(struct onnx_ctx *c)
{
    struct onnx_value a;
    float alpha = onnx_attr_float(c->n, "alpha", 1.0f), beta = onnx_attr_float(c->n, "beta", 1.0f);
    bool ta = onnx_attr_int(c->n, "transA", 0) != 0, tb = onnx_attr_int(c->n, "transB", 0) != 0;
    if (!onnx_tensor_input(c, 0, &a))
        return NULL;
    int kb = constant_input(c, 1, "B matrix");
    if (kb < 0)
        return NULL;
    if (a.shape.rank != 2 || c->n->consts[kb].shape.rank != 2)
        return onnx_fail(c, NNCC_ERR_SHAPE, "A and B must be 2-D");
    if (ta)
        return gemm_general(c, &a, kb, alpha, beta, ta, tb);
    if (a.layout == ONNX_CL && !onnx_to_plain(c, &a))
        return NULL;
    int64_t kdim = a.shape.dim[1];
    struct nncc_shape bs = c->n->consts[kb].shape;
    if ((tb ? bs.dim[1] : bs.dim[0]) != kdim)
        return onnx_fail(c, NNCC_ERR_SHAPE, "A has %lld columns but B %lld rows", (long long)kdim,
                         (long long)(tb ? bs.dim[1] : bs.dim[0]));
    nncc_tensor *w = kernel_2d(c, kb, tb, alpha, &a);
    if (!w)
        return NULL;
    int64_t p = w->shape.dim[1];
    nncc_tensor *in[2] = {a.t, w};
    nncc_tensor *y = onnx_node_add(c, IR_MATMUL, in, 2, NULL, "matmul");
    struct onnx_value cv;
    int kc;
    if (y && onnx_input(c, 2, &cv, &kc))
        return onnx_fail(c, NNCC_ERR_UNSUPPORTED, "C computed by the graph is not supported");
    if (y && kc >= 0 && beta != 0.0f) {
        struct nncc_shape cs = c->n->consts[kc].shape;
        if (onnx_numel(cs, 0) != p || (cs.rank == 2 && cs.dim[0] != 1) || cs.rank > 2) {
            /* A matrix or a scalar: broadcast with BINARY (beta folded in). */
            struct onnx_value out = {.t = y, .shape = {.rank = 2, .dim = {a.shape.dim[0], p}}};
            return add_c(c, &out, kc, beta);
        }
        bool importing = c->n->consts[kc].values != NULL;
        nncc_tensor *b = onnx_weight(c, kc, NNCC_SHAPE(p), true, NULL);
        if (!b)
            return NULL;
        if (importing && beta != 1.0f)
            for (int64_t i = 0; i < p; i++)
                b->data[i] *= beta;
        nncc_tensor *bin[2] = {y, b};
        y = onnx_node_add(c, IR_BIAS_ADD, bin, 2, NULL, "bias_add");
    }
    struct onnx_value out = {.t = y, .shape = {.rank = 2, .dim = {a.shape.dim[0], p}}};
    return onnx_output(c, &out);
}

nncc_tensor *onnx_lower_matmul(struct onnx_ctx *c)
{
    struct onnx_value a, b;
    int ka, kb;
    bool at = onnx_input(c, 0, &a, &ka), bt = onnx_input(c, 1, &b, &kb);
    if (at && !bt && kb >= 0 && c->n->consts[kb].shape.rank == 2) {
        /* x (…, K) · W (K, P): the Dense product. */
        if (a.layout == ONNX_CL && !onnx_to_plain(c, &a))
            return NULL;
        if (a.layout == ONNX_FLAT_CL && a.shape.rank != 2 && !onnx_to_plain(c, &a))
            return NULL;
        if (a.shape.rank < 1 || (a.shape.rank < 2 && !c->n->whole))
            return onnx_fail(c, NNCC_ERR_UNSUPPORTED, "a 1-D A is its batch axis");
        int64_t kdim = a.shape.dim[a.shape.rank - 1];
        if (c->n->consts[kb].shape.dim[0] != kdim)
            return onnx_fail(c, NNCC_ERR_SHAPE, "A has %lld columns but B %lld rows",
                             (long long)kdim, (long long)c->n->consts[kb].shape.dim[0]);
        nncc_tensor *w = kernel_2d(c, kb, false, 1.0f, &a);
        if (!w)
            return NULL;
        nncc_tensor *in[2] = {a.t, w};
        struct onnx_value out = {.t = onnx_node_add(c, IR_MATMUL, in, 2, NULL, "matmul"),
                                 .shape = a.shape};
        out.shape.dim[out.shape.rank - 1] = w->shape.dim[1];
        return onnx_output(c, &out);
    }
    /* The general product: both operands through BATCH_MATMUL. */
    struct onnx_value op[2] = {a, b};
    bool is_t[2] = {at, bt};
    int kk[2] = {ka, kb};
    for (int i = 0; i < 2; i++) {
        if (is_t[i]) {
            if (!onnx_to_plain(c, &op[i]))
                return NULL;
        } else if (kk[i] >= 0) {
            struct nncc_shape s = c->n->consts[kk[i]].shape;
            nncc_tensor *w = onnx_weight(c, kk[i], s, true, NULL);
            if (!w)
                return NULL;
            op[i] = (struct onnx_value){.t = w, .shape = s};
        } else {
            return onnx_fail(c, NNCC_ERR_FORMAT, "input %d is absent", i);
        }
    }
    /* ONNX's 1-D promotion: A (K) → (1, K), B (K) → (K, 1), dropped after. */
    bool drop_m = op[0].shape.rank == 1, drop_p = op[1].shape.rank == 1;
    if ((drop_m && is_t[0]) || (drop_p && is_t[1])) {
        if (!c->n->whole)
            return onnx_fail(c, NNCC_ERR_UNSUPPORTED, "a 1-D operand computed by the graph is "
                                                      "its batch axis");
    }
    if (drop_m || drop_p)
        return onnx_fail(c, NNCC_ERR_UNSUPPORTED, "1-D MatMul operands are not supported yet");
    struct ir_attrs attrs = {0};
    nncc_tensor *in[2] = {op[0].t, op[1].t};
    nncc_tensor *y = onnx_node_add(c, IR_BATCH_MATMUL, in, 2, &attrs, "batch_matmul");
    if (!y)
        return NULL;
    /* The ONNX shape: broadcast batch dims, then (M, P). */
    struct nncc_shape sa = op[0].shape, sb = op[1].shape, so = {0};
    so.rank = sa.rank > sb.rank ? sa.rank : sb.rank;
    for (int i = 0; i < so.rank - 2; i++) {
        int ia = i - (so.rank - sa.rank), ib = i - (so.rank - sb.rank);
        int64_t da = ia >= 0 ? sa.dim[ia] : 1, db = ib >= 0 ? sb.dim[ib] : 1;
        so.dim[i] = da == 1 ? db : da;
        if (da == NNCC_NONE || db == NNCC_NONE)
            so.dim[i] = NNCC_NONE;
    }
    so.dim[so.rank - 2] = sa.dim[sa.rank - 2];
    so.dim[so.rank - 1] = sb.dim[sb.rank - 1];
    struct onnx_value out = {.t = y, .shape = so};
    return onnx_output(c, &out);
}
