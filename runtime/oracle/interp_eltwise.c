/*
 * interp_eltwise.c — reference kernels of the element-wise family with
 * ONNX semantics (ir/eltwise.h): UNARY and its gradient from the formulas
 * of ir/unary.def, BINARY with numpy broadcasting and its gradient summed
 * back to each operand's shape, LOG_SOFTMAX and its gradient along any
 * axis.  Naive loops in double; the formulas are the very text the
 * generated code compiles in float.  (SOFTMAX and SOFTMAX_GRAD along any
 * axis are in interp.c and interp_train.c.)
 */
#include <math.h>
#include <string.h>
#include "runtime/oracle/interp.h"
#include "ir/eltwise.h"

static int64_t count(const nncc_tensor *t, int batch)
{
    return t->batched ? batch * ir_shape_numel(t->shape, 1) : ir_shape_numel(t->shape, 0);
}

/* ---- UNARY ------------------------------------------------------------- */

#define K(x) ((double)(x))
static double unary_f(int op, double v, double p0, double p1)
{
    (void)p0, (void)p1;
    switch (op) {
#define UN(id, name, expr, deriv) case IR_UNARY_##id: return expr;
#include "ir/unary.def"
#undef UN
    default: break;
    }
    NNCC_ASSERT(!"unknown unary function");
    return 0;
}

static double unary_d(int op, double v, double y, double p0, double p1)
{
    (void)v, (void)y, (void)p0, (void)p1;
    switch (op) {
#define UN(id, name, expr, deriv) case IR_UNARY_##id: return deriv;
#include "ir/unary.def"
#undef UN
    default: break;
    }
    NNCC_ASSERT(!"unknown unary function");
    return 0;
}

static double binary_f(int op, double a, double b)
{
    switch (op) {
#define X(id, name, f, da, db) case IR_BINARY_##id: return f;
        IR_BINARY_OPS(X)
#undef X
    default: break;
    }
    NNCC_ASSERT(!"unknown binary operation");
    return 0;
}

static double binary_d(int op, int which, double a, double b)
{
    switch (op) {
#define X(id, name, f, da, db) case IR_BINARY_##id: return which ? (db) : (da);
        IR_BINARY_OPS(X)
#undef X
    default: break;
    }
    NNCC_ASSERT(!"unknown binary operation");
    return 0;
}
#undef K

void ref_unary(const struct ir_node *n, int batch, const double *const *in, double *out,
               const double *h)
{
    (void)h;
    int64_t total = count(n->out, batch);
    for (int64_t i = 0; i < total; i++)
        out[i] = unary_f(n->a.unary, in[0][i], n->a.p0, n->a.p1);
}

/* dx = dy · f'(x, y); inputs (dy, x, y) */
void ref_unary_grad(const struct ir_node *n, int batch, const double *const *in, double *out,
                    const double *h)
{
    (void)h;
    int64_t total = count(n->out, batch);
    for (int64_t i = 0; i < total; i++)
        out[i] = in[0][i] * unary_d(n->a.unary, in[1][i], in[2][i], n->a.p0, n->a.p1);
}

/* ---- BINARY ------------------------------------------------------------ */

/* Output element i (of shape ys, batch filled in) as an index into t,
 * whose dims align with ys from the right; size-1 dims stay at 0. */
static int64_t bcast_index(struct nncc_shape ys, const nncc_tensor *t, int batch, int64_t i)
{
    struct nncc_shape ts = t->shape;
    if (t->batched)
        ts.dim[0] = batch;
    int64_t idx = 0, stride = 1;
    for (int d = ys.rank - 1; d >= 0; d--) {
        int64_t coord = i % ys.dim[d];
        i /= ys.dim[d];
        int td = d - (ys.rank - ts.rank);
        if (td < 0)
            continue;
        idx += (ts.dim[td] == 1 ? 0 : coord) * stride;
        stride *= ts.dim[td];
    }
    return idx;
}

void ref_binary(const struct ir_node *n, int batch, const double *const *in, double *out,
                const double *h)
{
    (void)h;
    struct nncc_shape ys = n->out->shape;
    if (n->out->batched)
        ys.dim[0] = batch;
    int64_t total = ir_shape_numel(ys, 0);
    for (int64_t i = 0; i < total; i++)
        out[i] = binary_f(n->a.binary, in[0][bcast_index(ys, n->in[0], batch, i)],
                          in[1][bcast_index(ys, n->in[1], batch, i)]);
}

/* d(operand which) = Σ dy · ∂f/∂operand over the output elements that read
 * each operand element; inputs (dy, a, b). */
void ref_binary_grad(const struct ir_node *n, int batch, const double *const *in, double *out,
                     const double *h)
{
    (void)h;
    const nncc_tensor *dy = n->in[0], *a = n->in[1], *b = n->in[2];
    const nncc_tensor *x = n->in[1 + n->a.which];
    struct nncc_shape ys = dy->shape;
    if (dy->batched)
        ys.dim[0] = batch;
    memset(out, 0, sizeof *out * (size_t)count(x, batch));
    int64_t total = ir_shape_numel(ys, 0);
    for (int64_t i = 0; i < total; i++) {
        double av = in[1][bcast_index(ys, a, batch, i)], bv = in[2][bcast_index(ys, b, batch, i)];
        out[bcast_index(ys, x, batch, i)] += in[0][i] * binary_d(n->a.binary, n->a.which, av, bv);
    }
}

/* ---- LOG_SOFTMAX ------------------------------------------------------- */

static void axis_dims(const struct ir_node *n, int batch, int64_t *outer, int64_t *C,
                      int64_t *inner)
{
    struct nncc_shape s = n->out->shape;
    if (n->out->batched)
        s.dim[0] = batch;
    int axis = ir_softmax_axis(n);
    *C = s.dim[axis];
    *inner = ir_shape_numel(s, axis + 1);
    *outer = ir_shape_numel(s, 0) / (*C * *inner);
}

/* y = x − max − log Σ e^{x − max} along the axis. */
void ref_log_softmax(const struct ir_node *n, int batch, const double *const *in, double *out,
                     const double *h)
{
    (void)h;
    int64_t outer, C, inner;
    axis_dims(n, batch, &outer, &C, &inner);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t k = 0; k < inner; k++) {
            const double *x = in[0] + o * C * inner + k;
            double *y = out + o * C * inner + k, mx = x[0], sum = 0;
            for (int64_t c = 1; c < C; c++)
                mx = x[c * inner] > mx ? x[c * inner] : mx;
            for (int64_t c = 0; c < C; c++)
                sum += exp(x[c * inner] - mx);
            double lse = mx + log(sum);
            for (int64_t c = 0; c < C; c++)
                y[c * inner] = x[c * inner] - lse;
        }
}

/* dx = dy − e^y · Σ dy along the axis; inputs (dy, y). */
void ref_log_softmax_grad(const struct ir_node *n, int batch, const double *const *in,
                          double *out, const double *h)
{
    (void)h;
    int64_t outer, C, inner;
    axis_dims(n, batch, &outer, &C, &inner);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t k = 0; k < inner; k++) {
            int64_t base = o * C * inner + k;
            const double *dy = in[0] + base, *y = in[1] + base;
            double sum = 0;
            for (int64_t c = 0; c < C; c++)
                sum += dy[c * inner];
            for (int64_t c = 0; c < C; c++)
                out[base + c * inner] = dy[c * inner] - exp(y[c * inner]) * sum;
        }
}
