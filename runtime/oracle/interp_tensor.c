/*
 * interp_tensor.c — reference kernels of the tensor ops (transpose, strided
 * slice, pad, reduce, gather) and of their gradients, in double with naive
 * loops: every output element found from its coordinates, the formulas of
 * the conventions written above the shape rules in ir/ops.c.
 *
 * A batched value's dim 0 is the run's `batch`; an unbatched one has its
 * own dims.  Gather indices outside [−size, size), or not integers, make
 * the oracle write NaN (the generated code writes 0): a test comparing the
 * two sees them.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "runtime/oracle/interp.h"

/* t's shape with the batch filled in. */
static struct nncc_shape dims(const nncc_tensor *t, int batch)
{
    struct nncc_shape s = t->shape;
    if (t->batched)
        s.dim[0] = batch;
    return s;
}

/* Row-major strides of s. */
static void strides(struct nncc_shape s, int64_t *st)
{
    int64_t acc = 1;
    for (int i = s.rank - 1; i >= 0; i--) {
        st[i] = acc;
        acc *= s.dim[i];
    }
}

/* Coordinates of linear index i in s. */
static void coords(struct nncc_shape s, int64_t i, int64_t *c)
{
    for (int d = s.rank - 1; d >= 0; d--) {
        c[d] = i % s.dim[d];
        i /= s.dim[d];
    }
}

void ref_transpose(const struct ir_node *n, int batch, const double *const *in, double *out,
                   const double *h)
{
    (void)h;
    struct nncc_shape xs = dims(n->in[0], batch), ys = dims(n->out, batch);
    int64_t xst[NNCC_MAX_RANK], c[NNCC_MAX_RANK];
    strides(xs, xst);
    int64_t total = ir_shape_numel(ys, 0);
    for (int64_t i = 0; i < total; i++) {
        coords(ys, i, c);
        int64_t src = 0;
        for (int d = 0; d < ys.rank; d++)
            src += c[d] * xst[n->a.perm[d]];
        out[i] = in[0][src];
    }
}

/* The input index a slice's output element i reads (the batch axis of a
 * batched value is taken whole). */
static int64_t slice_src(const struct ir_node *n, struct nncc_shape ys, const int64_t *xst,
                         bool batched, int64_t i)
{
    int64_t c[NNCC_MAX_RANK], src = 0;
    coords(ys, i, c);
    for (int d = 0; d < ys.rank; d++)
        src += (d == 0 && batched ? c[0] : n->a.begin[d] + c[d] * n->a.step[d]) * xst[d];
    return src;
}

void ref_strided_slice(const struct ir_node *n, int batch, const double *const *in, double *out,
                       const double *h)
{
    (void)h;
    struct nncc_shape xs = dims(n->in[0], batch), ys = dims(n->out, batch);
    int64_t xst[NNCC_MAX_RANK];
    strides(xs, xst);
    int64_t total = ir_shape_numel(ys, 0);
    for (int64_t i = 0; i < total; i++)
        out[i] = in[0][slice_src(n, ys, xst, n->in[0]->batched, i)];
}

void ref_strided_slice_grad(const struct ir_node *n, int batch, const double *const *in,
                            double *out, const double *h)
{
    (void)h;
    struct nncc_shape xs = dims(n->out, batch), ys = dims(n->in[0], batch);
    int64_t xst[NNCC_MAX_RANK];
    strides(xs, xst);
    memset(out, 0, sizeof *out * (size_t)ir_shape_numel(xs, 0));
    int64_t total = ir_shape_numel(ys, 0);
    for (int64_t i = 0; i < total; i++)
        out[slice_src(n, ys, xst, n->in[0]->batched, i)] += in[0][i];
}

void ref_pad(const struct ir_node *n, int batch, const double *const *in, double *out,
             const double *h)
{
    (void)h;
    struct nncc_shape xs = dims(n->in[0], batch), ys = dims(n->out, batch);
    int64_t xst[NNCC_MAX_RANK], c[NNCC_MAX_RANK];
    strides(xs, xst);
    int64_t total = ir_shape_numel(ys, 0);
    for (int64_t i = 0; i < total; i++) {
        coords(ys, i, c);
        int64_t src = 0;
        bool inside = true;
        for (int d = 0; d < ys.rank; d++) {
            int64_t k = c[d] - n->a.pad_begin[d];
            inside &= k >= 0 && k < xs.dim[d];
            src += k * xst[d];
        }
        out[i] = inside ? in[0][src] : (double)n->a.pad_value;
    }
}

/* The output index (in y's linear order) of x's element i: its kept
 * coordinates (keepdims or not, the order is the same). */
static int64_t reduce_dst(uint32_t axes, struct nncc_shape xs, int64_t i)
{
    int64_t c[NNCC_MAX_RANK], dst = 0;
    coords(xs, i, c);
    for (int d = 0; d < xs.rank; d++)
        if (!(axes >> d & 1u))
            dst = dst * xs.dim[d] + c[d];
    return dst;
}

void ref_reduce(const struct ir_node *n, int batch, const double *const *in, double *out,
                const double *h)
{
    (void)h;
    struct nncc_shape xs = dims(n->in[0], batch);
    int64_t total = ir_shape_numel(xs, 0), ny = ir_shape_numel(dims(n->out, batch), 0);
    double init = n->a.reduce == IR_REDUCE_MAX   ? -INFINITY
                  : n->a.reduce == IR_REDUCE_MIN ? INFINITY
                  : n->a.reduce == IR_REDUCE_PROD ? 1.0
                                                  : 0.0;
    for (int64_t o = 0; o < ny; o++)
        out[o] = init;
    for (int64_t i = 0; i < total; i++) {
        double v = in[0][i], *y = out + reduce_dst(n->a.reduce_axes, xs, i);
        switch (n->a.reduce) {
        case IR_REDUCE_MAX: *y = v > *y ? v : *y; break;
        case IR_REDUCE_MIN: *y = v < *y ? v : *y; break;
        case IR_REDUCE_PROD: *y *= v; break;
        default: *y += v; break;
        }
    }
    if (n->a.reduce == IR_REDUCE_MEAN)
        for (int64_t o = 0; o < ny; o++)
            out[o] /= (double)(total / ny);
}

void ref_reduce_grad(const struct ir_node *n, int batch, const double *const *in, double *out,
                     const double *h)
{
    (void)h;
    struct nncc_shape xs = dims(n->in[1], batch);
    int64_t total = ir_shape_numel(xs, 0), ny = ir_shape_numel(dims(n->in[2], batch), 0);
    const double *dy = in[0], *x = in[1], *y = in[2];
    uint32_t axes = n->a.reduce_axes;
    if (n->a.reduce == IR_REDUCE_SUM || n->a.reduce == IR_REDUCE_MEAN) {
        double scale = n->a.reduce == IR_REDUCE_MEAN ? 1.0 / (double)(total / ny) : 1.0;
        for (int64_t i = 0; i < total; i++)
            out[i] = dy[reduce_dst(axes, xs, i)] * scale;
        return;
    }
    NNCC_ASSERT(n->a.reduce == IR_REDUCE_MAX || n->a.reduce == IR_REDUCE_MIN);
    double *cnt = calloc((size_t)ny, sizeof *cnt); /* ties per output */
    NNCC_ASSERT(cnt != NULL);
    for (int64_t i = 0; i < total; i++) {
        int64_t o = reduce_dst(axes, xs, i);
        cnt[o] += x[i] == y[o];
    }
    for (int64_t i = 0; i < total; i++) {
        int64_t o = reduce_dst(axes, xs, i);
        out[i] = x[i] == y[o] ? dy[o] / cnt[o] : 0.0;
    }
    free(cnt);
}

/* A gather index in [0, size), or -1 when v is no integer in [−size, size). */
static int64_t gather_index(double v, int64_t size)
{
    if (!(v >= (double)-size && v < (double)size) || v != trunc(v))
        return -1;
    int64_t j = (int64_t)v;
    return j < 0 ? j + size : j;
}

/* data (outer, D, inner) and indices (K): y (outer, K, inner). */
static void gather_dims(struct nncc_shape xs, int axis, int64_t *outer, int64_t *D,
                        int64_t *inner)
{
    *outer = 1;
    for (int d = 0; d < axis; d++)
        *outer *= xs.dim[d];
    *D = xs.dim[axis];
    *inner = ir_shape_numel(xs, axis + 1);
}

void ref_gather(const struct ir_node *n, int batch, const double *const *in, double *out,
                const double *h)
{
    (void)h;
    int64_t outer, D, inner, K = ir_shape_numel(dims(n->in[1], batch), 0);
    gather_dims(dims(n->in[0], batch), n->a.axis, &outer, &D, &inner);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t k = 0; k < K; k++) {
            int64_t j = gather_index(in[1][k], D);
            for (int64_t i = 0; i < inner; i++)
                out[(o * K + k) * inner + i] = j < 0 ? NAN : in[0][(o * D + j) * inner + i];
        }
}

/* GATHER_GRAD and GATHER_GRAD_PARAM: dy (outer, K, inner) added into zeros
 * (outer, D, inner) at each index; invalid indices add nothing. */
void ref_gather_grad(const struct ir_node *n, int batch, const double *const *in, double *out,
                     const double *h)
{
    (void)h;
    int64_t outer, D, inner, K = ir_shape_numel(dims(n->in[1], batch), 0);
    struct nncc_shape xs = dims(n->out, batch);
    gather_dims(xs, n->a.axis, &outer, &D, &inner);
    memset(out, 0, sizeof *out * (size_t)ir_shape_numel(xs, 0));
    for (int64_t o = 0; o < outer; o++)
        for (int64_t k = 0; k < K; k++) {
            int64_t j = gather_index(in[1][k], D);
            for (int64_t i = 0; j >= 0 && i < inner; i++)
                out[(o * D + j) * inner + i] += in[0][(o * K + k) * inner + i];
        }
}
