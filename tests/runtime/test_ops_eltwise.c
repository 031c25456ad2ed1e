/*
 * test_ops_eltwise: the element-wise family with ONNX semantics
 * (ir/eltwise.h): UNARY, BINARY, SOFTMAX along any axis, LOG_SOFTMAX and
 * their gradients, built directly as IR nodes (the ONNX importer's way).
 *
 * 1. The oracle (runtime/oracle/) against values worked out here: every
 *    unary function and its derivative (incl. the kinks: relu, abs, clip
 *    at its bounds, hard_swish at ±3, leaky_relu at 0), every binary
 *    operation under each kind of broadcasting (batched with constants of
 *    lower rank and of equal rank with dim 0 = 1, two batched, two
 *    unbatched), the gradients summed back to each operand's shape (a
 *    constant's over the batch too; max/min ties to a), softmax and
 *    log_softmax along a middle axis, axis 0 of a constant and the last;
 *    the shape rules' errors and the canonical axis they store.
 * 2. The generated code (codegen, through the JIT) against the oracle: one
 *    model with every unary function, every binary operation on every
 *    layout (full, scalar, per-channel, constant sample, strided, both
 *    batched, both constant), softmax and log_softmax on every axis of a
 *    rank-4 value and of constants, and a dense → softmax along a middle
 *    axis (which must not take the fused last-axis epilogue), for n = 1, 5
 *    and 37; tolerance 2e-5 relative + 2e-5 (float against double).
 * 3. Gradients: one model whose branches use every op, each fed by a
 *    batched input plus a trainable constant (so every operand's gradient
 *    reaches a weight), concatenated, MSE loss.  The autodiff gradient
 *    (oracle, double) against central differences (h = 2^-14, weights
 *    multiples of 2^-10, so w ± h is exact): |g − fd| ≤ 1e-6·max + 1e-9,
 *    as tests/passes/test_grad.c argues; then the generated gradient step
 *    against the oracle's (1e-4 relative, floor 1e-4 × RMS).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/eltwise.h"
#include "ir/plan.h"
#include "passes/passes.h"
#include "runtime/jit/exec.h"
#include "runtime/oracle/interp.h"

#define SH(...) ((struct nncc_shape){.rank = sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t), \
                                     .dim = {__VA_ARGS__}})
#define N NNCC_NONE

/* ---- Helpers ------------------------------------------------------------ */

static nncc_tensor *nn_(nncc_tensor *t, const char *what, int line)
{
    if (!t)
        fail_msg("line %d: %s failed: %s", line, what, nncc_last_error());
    return t;
}
#define NN(expr) nn_((expr), #expr, __LINE__)

#define OK(expr)                                                                     \
    do {                                                                             \
        enum nncc_status st_ = (expr);                                               \
        if (st_ != NNCC_OK)                                                          \
            fail_msg("%s failed: %s", #expr, nncc_last_error());                     \
    } while (0)

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static double urand(uint64_t *s, double lo, double hi)
{
    return lo + (hi - lo) * (double)(rng_next(s) >> 11) * 0x1.0p-53;
}

static float quant(double v) { return (float)ldexp(nearbyint(ldexp(v, 10)), -10); }

static int64_t numel(const nncc_tensor *t) { return ir_shape_numel(t->shape, t->batched ? 1 : 0); }
static int64_t count(const nncc_tensor *t, int batch) { return (t->batched ? batch : 1) * numel(t); }

static int node_seq; /* unique node names */

static nncc_tensor *op(nncc_graph *g, enum ir_op o, nncc_tensor *const *in, int n_in,
                       struct ir_attrs a)
{
    char name[32];
    snprintf(name, sizeof name, "n%d", node_seq++);
    return ir_add_node(g, o, in, n_in, &a, NULL, name);
}

static nncc_tensor *un(nncc_graph *g, int f, float p0, float p1, nncc_tensor *x)
{
    return NN(op(g, IR_UNARY, &x, 1, (struct ir_attrs){.unary = f, .p0 = p0, .p1 = p1}));
}

static nncc_tensor *bin(nncc_graph *g, int f, nncc_tensor *a, nncc_tensor *b)
{
    nncc_tensor *in[2] = {a, b};
    return NN(op(g, IR_BINARY, in, 2, (struct ir_attrs){.binary = f}));
}

static nncc_tensor *axis_op(nncc_graph *g, enum ir_op o, int axis, nncc_tensor *x)
{
    return NN(op(g, o, &x, 1, (struct ir_attrs){.axis = axis}));
}

/* A constant (or trainable weight) with the given values, or values from
 * seed s in [lo, hi), quantized, when v is NULL. */
static nncc_tensor *cst(nncc_graph *g, struct nncc_shape s, const float *v, bool trainable,
                        uint64_t *seed, double lo, double hi)
{
    char name[32];
    snprintf(name, sizeof name, "p%d", node_seq++);
    nncc_tensor *t = NN(ir_add_param(g, s, name, trainable, NNCC_ZEROS, NULL));
    for (int64_t i = 0; i < ir_shape_numel(s, 0); i++)
        t->data[i] = v ? v[i] : quant(urand(seed, lo, hi));
    return t;
}

static nncc_tensor *input(nncc_graph *g, struct nncc_shape s)
{
    char name[32];
    snprintf(name, sizeof name, "x%d", node_seq++);
    return NN(ir_add_input(g, s, name, NULL));
}

/* Runs the oracle on one output; returns its values (malloc'd). */
static double *oracle1(nncc_graph *g, nncc_tensor **ins, int n_in, const float *const *data,
                       nncc_tensor *out, int batch)
{
    struct ir_program p;
    OK(ir_program_init(&p, g, ins, n_in, &out, 1));
    double *y = calloc((size_t)count(out, batch) + 1, sizeof *y);
    double *outs[1] = {y};
    OK(nncc_interp_step_d(&p, batch, data, outs, NULL, false));
    ir_program_free(&p);
    return y;
}

static void expect_near(const char *what, const double *got, const double *want, int64_t n,
                        double tol)
{
    for (int64_t i = 0; i < n; i++)
        if (!(fabs(got[i] - want[i]) <= tol * (1 + fabs(want[i]))))
            fail_msg("%s[%lld]: got %.17g, want %.17g", what, (long long)i, got[i], want[i]);
}

/* ---- 1. The oracle against worked values --------------------------------- */

/* Each function on inputs chosen for it (positive ones for log, sqrt,
 * reciprocal), f and f' against the formulas written out here. */
static void test_unary_values(void **state)
{
    (void)state;
    static const float xs[6] = {-3, -0.5f, 0, 0.5f, 3, 4};
    static const float pos[6] = {0.25f, 0.5f, 1, 2, 3, 4};
    for (int f = 0; f < IR_UNARY_COUNT; f++) {
        bool positive = f == IR_UNARY_LOG || f == IR_UNARY_SQRT || f == IR_UNARY_RECIPROCAL;
        const float *v = positive ? pos : xs;
        float p0 = 0, p1 = 0;
        if (f == IR_UNARY_HARD_SIGMOID)
            p0 = 0.2f, p1 = 0.5f;
        else if (f == IR_UNARY_CLIP)
            p0 = -0.5f, p1 = 3;
        else if (f == IR_UNARY_SELU)
            p0 = 1.5f, p1 = 2;
        else if (f == IR_UNARY_ELU || f == IR_UNARY_LEAKY_RELU)
            p0 = 0.25f;
        nncc_graph *g = nncc_graph_new();
        nncc_tensor *x = input(g, SH(N, 6));
        nncc_tensor *y = un(g, f, p0, p1, x);
        static const float ones[6] = {1, 1, 1, 1, 1, 1};
        nncc_tensor *dy = input(g, SH(N, 6));
        nncc_tensor *gi[3] = {dy, x, y};
        nncc_tensor *dx = NN(op(g, IR_UNARY_GRAD, gi, 3, y->producer->a));
        nncc_tensor *ins[2] = {x, dy};
        const float *data[2] = {v, ones};
        double *ry = oracle1(g, ins, 2, data, y, 1);
        double *rdx = oracle1(g, ins, 2, data, dx, 1);
        double want[6], dwant[6];
        for (int i = 0; i < 6; i++) {
            double a = v[i], e = 0, d = 0, A = p0, B = p1;
            switch (f) {
            case IR_UNARY_EXP: e = exp(a), d = exp(a); break;
            case IR_UNARY_LOG: e = log(a), d = 1 / a; break;
            case IR_UNARY_SQRT: e = sqrt(a), d = 0.5 / sqrt(a); break;
            case IR_UNARY_NEG: e = -a, d = -1; break;
            case IR_UNARY_ABS: e = fabs(a), d = a > 0 ? 1 : a < 0 ? -1 : 0; break;
            case IR_UNARY_RECIPROCAL: e = 1 / a, d = -1 / (a * a); break;
            case IR_UNARY_ERF: e = erf(a), d = 2 / sqrt(acos(-1.0)) * exp(-a * a); break;
            case IR_UNARY_CEIL: e = ceil(a), d = 0; break;
            case IR_UNARY_FLOOR: e = floor(a), d = 0; break;
            case IR_UNARY_HARD_SWISH: /* x·relu6(x + 3)/6; at ±3 PyTorch's x/3 + 1/2 */
                e = a * fmin(fmax(a + 3, 0), 6) / 6;
                d = a < -3 ? 0 : a > 3 ? 1 : a / 3 + 0.5;
                break;
            case IR_UNARY_HARD_SIGMOID: /* 0.2x + 0.5: saturates at ±2.5 */
                e = fmin(fmax(A * a + B, 0), 1);
                d = fabs(a) < 2.5 ? A : 0;
                break;
            case IR_UNARY_CLIP: /* [−0.5, 3], bounds included in the gradient */
                e = a < -0.5 ? -0.5 : a > 3 ? 3 : a;
                d = a >= -0.5 && a <= 3 ? 1 : 0;
                break;
            case IR_UNARY_SELU: e = B * (a > 0 ? a : A * (exp(a) - 1)), d = a > 0 ? B : B * A * exp(a); break;
            case IR_UNARY_ELU: e = a > 0 ? a : A * (exp(a) - 1), d = a > 0 ? 1 : A * exp(a); break;
            case IR_UNARY_LEAKY_RELU: e = a < 0 ? A * a : a, d = a > 0 ? 1 : A; break;
            case IR_UNARY_SIGMOID: e = 1 / (1 + exp(-a)), d = e * (1 - e); break;
            case IR_UNARY_TANH: e = tanh(a), d = 1 - e * e; break;
            case IR_UNARY_RELU: e = a > 0 ? a : 0, d = a > 0 ? 1 : 0; break;
            case IR_UNARY_SOFTPLUS: e = log(1 + exp(a)), d = 1 / (1 + exp(-a)); break;
            case IR_UNARY_SOFTSIGN: e = a / (1 + fabs(a)), d = 1 / ((1 + fabs(a)) * (1 + fabs(a))); break;
            default: fail_msg("unary %d has no case here", f);
            }
            want[i] = e;
            dwant[i] = d;
        }
        char what[64];
        snprintf(what, sizeof what, "%s", ir_unary_name(f));
        expect_near(what, ry, want, 6, 1e-12);
        snprintf(what, sizeof what, "%s'", ir_unary_name(f));
        expect_near(what, rdx, dwant, 6, 1e-12);
        free(ry), free(rdx);
        nncc_graph_free(g);
    }
}

/* y = f(a, b) written out for the tests (not from ir/eltwise.h). */
static double bf(int f, double a, double b)
{
    switch (f) {
    case IR_BINARY_ADD: return a + b;
    case IR_BINARY_SUB: return a - b;
    case IR_BINARY_MUL: return a * b;
    case IR_BINARY_DIV: return a / b;
    case IR_BINARY_POW: return pow(a, b);
    case IR_BINARY_PRELU: return a < 0 ? b * a : a;
    case IR_BINARY_MAX: return a > b ? a : b;
    case IR_BINARY_MIN: return a < b ? a : b;
    }
    return NAN;
}

static void test_binary_values(void **state)
{
    (void)state;
    /* Two constants (2, 1) and (3) → (2, 3), every operation. */
    static const float a2[2] = {2, 0.5f}, b3[3] = {0.5f, 2, -1};
    for (int f = 0; f < IR_BINARY_COUNT; f++) {
        nncc_graph *g = nncc_graph_new();
        nncc_tensor *a = cst(g, SH(2, 1), a2, false, NULL, 0, 0);
        nncc_tensor *b = cst(g, SH(3), b3, false, NULL, 0, 0);
        nncc_tensor *y = bin(g, f, a, b);
        assert_true(ir_shape_eq(y->shape, SH(2, 3)));
        assert_false(y->batched);
        double *r = oracle1(g, NULL, 0, NULL, y, 1), want[6];
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 3; j++)
                want[i * 3 + j] = bf(f, a2[i], b3[j]);
        expect_near(ir_binary_name(f), r, want, 6, 1e-15);
        free(r);
        nncc_graph_free(g);
    }
    /* Batched (N, 2, 3) with: a per-channel (3), a scalar (1), a constant
     * sample (1, 2, 3), a column (2, 1); and two batched (N, 1, 3) · (N, 2, 1). */
    nncc_graph *g = nncc_graph_new();
    nncc_tensor *x = input(g, SH(N, 2, 3)), *u = input(g, SH(N, 1, 3)), *w = input(g, SH(N, 2, 1));
    static const float c3[3] = {1, 2, 3}, c1[1] = {10}, c6[6] = {1, 2, 3, 4, 5, 6}, c21[2] = {-1, 1};
    nncc_tensor *k3 = cst(g, SH(3), c3, false, NULL, 0, 0);
    nncc_tensor *k1 = cst(g, SH(1), c1, false, NULL, 0, 0);
    nncc_tensor *k6 = cst(g, SH(1, 2, 3), c6, false, NULL, 0, 0);
    nncc_tensor *k21 = cst(g, SH(2, 1), c21, false, NULL, 0, 0);
    nncc_tensor *ys[5] = {bin(g, IR_BINARY_SUB, x, k3), bin(g, IR_BINARY_MUL, k1, x),
                          bin(g, IR_BINARY_ADD, x, k6), bin(g, IR_BINARY_PRELU, x, k21),
                          bin(g, IR_BINARY_MAX, u, w)};
    for (int k = 0; k < 5; k++) {
        assert_true(ys[k]->batched);
        assert_true(ir_shape_eq(ys[k]->shape, SH(N, 2, 3)));
    }
    /* Two samples. */
    static const float xv[12] = {1, -2, 3, -4, 5, -6, 0.5f, 1.5f, -2.5f, 3.5f, -4.5f, 5.5f};
    static const float uv[6] = {1, 2, 3, -1, -2, -3}, wv[4] = {2, 0, -2, 5};
    nncc_tensor *ins[3] = {x, u, w};
    const float *data[3] = {xv, uv, wv};
    double want[5][12];
    for (int s = 0; s < 2; s++)
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 3; j++) {
                int e = s * 6 + i * 3 + j;
                want[0][e] = xv[e] - c3[j];
                want[1][e] = 10 * xv[e];
                want[2][e] = xv[e] + c6[i * 3 + j];
                want[3][e] = xv[e] < 0 ? c21[i] * xv[e] : xv[e];
                want[4][e] = fmax(uv[s * 3 + j], wv[s * 2 + i]);
            }
    for (int k = 0; k < 5; k++) {
        struct ir_program p;
        OK(ir_program_init(&p, g, ins, 3, &ys[k], 1));
        double r[12], *outs[1] = {r};
        OK(nncc_interp_step_d(&p, 2, data, outs, NULL, false));
        char what[32];
        snprintf(what, sizeof what, "broadcast case %d", k);
        expect_near(what, r, want[k], 12, 1e-15);
        ir_program_free(&p);
    }
    nncc_graph_free(g);
}

/* Gradients of y = f(a, b) summed to each operand's shape, dy = 1 + i. */
static void test_binary_grad_values(void **state)
{
    (void)state;
    nncc_graph *g = nncc_graph_new();
    nncc_tensor *x = input(g, SH(N, 2, 3)), *dy = input(g, SH(N, 2, 3));
    static const float c3[3] = {1, 2, 3}, cm[3] = {1, -2, 4};
    nncc_tensor *k3 = cst(g, SH(3), c3, false, NULL, 0, 0);
    nncc_tensor *km = cst(g, SH(1, 1, 3), cm, false, NULL, 0, 0);
    nncc_tensor *y1 = bin(g, IR_BINARY_MUL, x, k3);  /* d k3 = Σ_{s,i} dy·x */
    nncc_tensor *y2 = bin(g, IR_BINARY_MAX, x, km);  /* ties go to x */
    nncc_tensor *y3 = bin(g, IR_BINARY_POW, k3, x);  /* d x = dy·y·log k3 */
    nncc_tensor *in1[3] = {dy, x, k3}, *in2[3] = {dy, x, km}, *in3[3] = {dy, k3, x};
    nncc_tensor *g1 = NN(op(g, IR_BINARY_GRAD_CONST, in1, 3,
                            (struct ir_attrs){.binary = IR_BINARY_MUL, .which = 1}));
    nncc_tensor *g2a = NN(op(g, IR_BINARY_GRAD, in2, 3,
                             (struct ir_attrs){.binary = IR_BINARY_MAX, .which = 0}));
    nncc_tensor *g2b = NN(op(g, IR_BINARY_GRAD_CONST, in2, 3,
                             (struct ir_attrs){.binary = IR_BINARY_MAX, .which = 1}));
    nncc_tensor *g3 = NN(op(g, IR_BINARY_GRAD, in3, 3,
                            (struct ir_attrs){.binary = IR_BINARY_POW, .which = 1}));
    (void)y1, (void)y2, (void)y3;
    assert_false(g1->batched);
    assert_true(ir_shape_eq(g1->shape, SH(3)));
    assert_true(ir_shape_eq(g2b->shape, SH(1, 1, 3)));
    /* Operand and op kind must agree. */
    assert_null(op(g, IR_BINARY_GRAD, in1, 3, (struct ir_attrs){.binary = IR_BINARY_MUL, .which = 1}));
    /* x has ties with km: x[.., 0] = 1 = km[0]. */
    static const float xv[12] = {1, -3, 5, 1, 0, 3, 1, -2, 4, 2, -2.5f, 0};
    float dv[12];
    for (int i = 0; i < 12; i++)
        dv[i] = (float)(1 + i);
    nncc_tensor *ins[2] = {x, dy};
    const float *data[2] = {xv, dv};
    double *r1 = oracle1(g, ins, 2, data, g1, 2), *r2a = oracle1(g, ins, 2, data, g2a, 2);
    double *r2b = oracle1(g, ins, 2, data, g2b, 2), *r3 = oracle1(g, ins, 2, data, g3, 2);
    double w1[3] = {0}, w2a[12], w2b[3] = {0}, w3[12];
    for (int e = 0; e < 12; e++) {
        int j = e % 3;
        w1[j] += dv[e] * xv[e];
        bool to_x = xv[e] >= cm[j];
        w2a[e] = to_x ? dv[e] : 0;
        w2b[j] += to_x ? 0 : dv[e];
        w3[e] = dv[e] * pow(c3[j], xv[e]) * log(c3[j]);
    }
    /* Worked by hand for column 0: x = 1, 1, 1, 2 against 1: ties go to x. */
    assert_true(w2a[0] == 1 && w2a[3] == 4 && w2a[6] == 7 && w2a[9] == 10);
    expect_near("d k3 of x·k3", r1, w1, 3, 1e-15);
    expect_near("d x of max(x, km)", r2a, w2a, 12, 1e-15);
    expect_near("d km of max(x, km)", r2b, w2b, 3, 1e-15);
    expect_near("d x of k3^x", r3, w3, 12, 1e-14);
    free(r1), free(r2a), free(r2b), free(r3);
    nncc_graph_free(g);
}

static void test_shape_errors(void **state)
{
    (void)state;
    nncc_graph *g = nncc_graph_new();
    nncc_tensor *x = input(g, SH(N, 2, 3)), *x2 = input(g, SH(N, 3));
    uint64_t s = 1;
    nncc_tensor *k4 = cst(g, SH(4, 2, 3), NULL, false, &s, 0, 1);
    nncc_tensor *k5 = cst(g, SH(1, 1, 2, 3), NULL, false, &s, 0, 1);
    nncc_tensor *k4b = cst(g, SH(4), NULL, false, &s, 0, 1);
    nncc_tensor *in[2];
    struct ir_attrs add = {.binary = IR_BINARY_ADD};
    in[0] = x, in[1] = k4; /* same rank, dim 0 not 1 */
    assert_null(op(g, IR_BINARY, in, 2, add));
    assert_non_null(strstr(nncc_last_error(), "must be 1"));
    in[1] = k5; /* higher rank than the batched operand */
    assert_null(op(g, IR_BINARY, in, 2, add));
    assert_non_null(strstr(nncc_last_error(), "batch axis"));
    in[1] = k4b; /* 4 against 3 */
    assert_null(op(g, IR_BINARY, in, 2, add));
    assert_non_null(strstr(nncc_last_error(), "cannot broadcast"));
    in[1] = x2; /* two batched operands of different ranks */
    assert_null(op(g, IR_BINARY, in, 2, add));
    in[1] = x;
    assert_null(op(g, IR_BINARY, in, 2, (struct ir_attrs){.binary = IR_BINARY_COUNT}));
    assert_null(op(g, IR_UNARY, &x, 1, (struct ir_attrs){.unary = -1}));
    /* Softmax axes: the batch axis, out of range. */
    assert_null(op(g, IR_SOFTMAX, &x, 1, (struct ir_attrs){.axis = -3}));
    assert_non_null(strstr(nncc_last_error(), "batch"));
    assert_null(op(g, IR_LOG_SOFTMAX, &x, 1, (struct ir_attrs){.axis = 3}));
    assert_null(op(g, IR_LOG_SOFTMAX, &x, 1, (struct ir_attrs){.axis = -4}));
    /* The canonical axis: 0 for the last, -rank for axis 0, else positive. */
    struct { nncc_tensor *t; int axis, stored; } cases[] = {
        {x, 0, 0}, {x, -1, 0}, {x, 2, 0}, {x, 1, 1}, {x, -2, 1},
        {k4, -3, -3}, {k4, 1, 1}, {k4, -1, 0}, {k4b, -1, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        nncc_tensor *y = NN(op(g, IR_SOFTMAX, &cases[i].t, 1, (struct ir_attrs){.axis = cases[i].axis}));
        assert_int_equal(y->producer->a.axis, cases[i].stored);
        nncc_tensor *z = NN(op(g, IR_LOG_SOFTMAX, &cases[i].t, 1, (struct ir_attrs){.axis = cases[i].axis}));
        assert_int_equal(z->producer->a.axis, cases[i].stored);
    }
    nncc_graph_free(g);
}

/* softmax and log_softmax of a (N, 2, 3) input along axis 1 and the last,
 * and of a (2, 3) constant along axis 0, against the formulas. */
static void test_softmax_axes_values(void **state)
{
    (void)state;
    nncc_graph *g = nncc_graph_new();
    nncc_tensor *x = input(g, SH(N, 2, 3));
    static const float cv[6] = {0, 1, 2, -1, 0.5f, 4};
    nncc_tensor *k = cst(g, SH(2, 3), cv, false, NULL, 0, 0);
    nncc_tensor *y[6] = {
        axis_op(g, IR_SOFTMAX, 1, x), axis_op(g, IR_SOFTMAX, -1, x),
        axis_op(g, IR_LOG_SOFTMAX, 1, x), axis_op(g, IR_LOG_SOFTMAX, 0, x),
        axis_op(g, IR_SOFTMAX, -2, k), axis_op(g, IR_LOG_SOFTMAX, -2, k),
    };
    static const float xv[6] = {1, 2, 3, 3, 0, -1};
    const float *data[1] = {xv};
    /* Along axis 1: pairs (1, 3), (2, 0), (3, −1); the last: (1, 2, 3), (3, 0, −1). */
    double w[6][6];
    for (int j = 0; j < 3; j++) {
        double a = xv[j], b = xv[3 + j], lse = log(exp(a) + exp(b));
        w[0][j] = exp(a - lse), w[0][3 + j] = exp(b - lse);
        w[2][j] = a - lse, w[2][3 + j] = b - lse;
        double ca = cv[j], cb = cv[3 + j], clse = log(exp(ca) + exp(cb));
        w[4][j] = exp(ca - clse), w[4][3 + j] = exp(cb - clse);
        w[5][j] = ca - clse, w[5][3 + j] = cb - clse;
    }
    for (int i = 0; i < 2; i++) {
        const float *r = xv + 3 * i;
        double lse = log(exp(r[0]) + exp(r[1]) + exp(r[2]));
        for (int j = 0; j < 3; j++) {
            w[1][3 * i + j] = exp(r[j] - lse);
            w[3][3 * i + j] = r[j] - lse;
        }
    }
    for (int k2 = 0; k2 < 6; k2++) {
        double *r = oracle1(g, &x, 1, data, y[k2], 1);
        char what[32];
        snprintf(what, sizeof what, "softmax case %d", k2);
        expect_near(what, r, w[k2], 6, 1e-15);
        free(r);
    }
    /* Gradients with dy = (1 … 6): softmax dx = y(dy − Σ dy·y), log_softmax
     * dx = dy − e^y Σ dy, both along axis 1. */
    nncc_tensor *dy = input(g, SH(N, 2, 3));
    nncc_tensor *gi0[2] = {dy, y[0]}, *gi2[2] = {dy, y[2]};
    nncc_tensor *g0 = NN(op(g, IR_SOFTMAX_GRAD, gi0, 2, y[0]->producer->a));
    nncc_tensor *g2 = NN(op(g, IR_LOG_SOFTMAX_GRAD, gi2, 2, y[2]->producer->a));
    static const float dv[6] = {1, 2, 3, 4, 5, 6};
    nncc_tensor *ins[2] = {x, dy};
    const float *data2[2] = {xv, dv};
    double *r0 = oracle1(g, ins, 2, data2, g0, 1), *r2 = oracle1(g, ins, 2, data2, g2, 1);
    double w0[6], w2[6];
    for (int j = 0; j < 3; j++) {
        double dot = dv[j] * w[0][j] + dv[3 + j] * w[0][3 + j], sum = dv[j] + dv[3 + j];
        for (int i = 0; i < 2; i++) {
            w0[3 * i + j] = w[0][3 * i + j] * (dv[3 * i + j] - dot);
            w2[3 * i + j] = dv[3 * i + j] - exp(w[2][3 * i + j]) * sum;
        }
    }
    expect_near("softmax_grad axis 1", r0, w0, 6, 1e-14);
    expect_near("log_softmax_grad axis 1", r2, w2, 6, 1e-14);
    free(r0), free(r2);
    nncc_graph_free(g);
}

/* ---- 2. Generated code against the oracle -------------------------------- */

#define MAXO 160

struct model {
    nncc_graph *g;
    nncc_tensor *in[8];
    int n_in;
    nncc_tensor *out[MAXO];
    char desc[MAXO][64];
    int n_out;
};

static void out_(struct model *m, nncc_tensor *t, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void out_(struct model *m, nncc_tensor *t, const char *fmt, ...)
{
    assert_true(m->n_out < MAXO);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->desc[m->n_out], sizeof m->desc[0], fmt, ap);
    va_end(ap);
    m->out[m->n_out++] = NN(t);
}

/* Runs the forward both ways on `batch` samples and compares every output. */
static int compare_forward(struct model *m, struct nncc_exec *ex, struct ir_program *p, int batch,
                           uint64_t *s)
{
    float *in[8];
    for (int i = 0; i < m->n_in; i++) {
        int64_t c = count(m->in[i], batch);
        in[i] = malloc(sizeof(float) * (size_t)c);
        for (int64_t j = 0; j < c; j++)
            in[i][j] = (float)urand(s, -2.5, 2.5);
    }
    float **fo = calloc((size_t)m->n_out, sizeof *fo);
    double **dO = calloc((size_t)m->n_out, sizeof *dO);
    for (int k = 0; k < m->n_out; k++) {
        fo[k] = calloc((size_t)count(m->out[k], batch), sizeof **fo);
        dO[k] = calloc((size_t)count(m->out[k], batch), sizeof **dO);
    }
    OK(nncc_interp_step_d(p, batch, (const float *const *)in, dO, NULL, false));
    struct nncc_exec_entry *e = &ex->entry[0];
    float *ws = calloc(nncc_exec_ws_floats(e, batch) + 1, sizeof *ws);
    e->forward(batch, (const float *const *)e->params, (const float *const *)in, fo, ws);
    int bad = 0;
    for (int k = 0; k < m->n_out; k++)
        for (int64_t j = 0; j < count(m->out[k], batch); j++) {
            double want = dO[k][j], got = fo[k][j];
            if (!(fabs(got - want) <= 2e-5 * fabs(want) + 2e-5) && !(isnan(want) && isnan(got))) {
                if (bad++ < 8)
                    print_error("n = %d, output %d (%s)[%lld]: generated %.9g, oracle %.9g\n",
                                batch, k, m->desc[k], (long long)j, got, want);
            }
        }
    for (int k = 0; k < m->n_out; k++)
        free(fo[k]), free(dO[k]);
    free(fo), free(dO), free(ws);
    for (int i = 0; i < m->n_in; i++)
        free(in[i]);
    return bad;
}

static void test_codegen_forward(void **state)
{
    (void)state;
    struct model m = {.g = nncc_graph_new()};
    nncc_graph *g = m.g;
    uint64_t s = 42;
    nncc_tensor *x = m.in[m.n_in++] = input(g, SH(N, 5, 7));
    nncc_tensor *x3 = m.in[m.n_in++] = input(g, SH(N, 1, 7));
    nncc_tensor *x4 = m.in[m.n_in++] = input(g, SH(N, 3, 4, 5));
    nncc_tensor *pos = un(g, IR_UNARY_EXP, 0, 0, x); /* positive: log, sqrt, 1/x, pow, div */
    nncc_tensor *kc = cst(g, SH(5, 3), NULL, false, &s, -2, 2);
    for (int f = 0; f < IR_UNARY_COUNT; f++) {
        bool positive = f == IR_UNARY_LOG || f == IR_UNARY_SQRT || f == IR_UNARY_RECIPROCAL;
        float p0 = f == IR_UNARY_CLIP ? -0.75f : f == IR_UNARY_HARD_SIGMOID ? 0.2f : 1.5f;
        float p1 = f == IR_UNARY_CLIP ? 1.25f : f == IR_UNARY_HARD_SIGMOID ? 0.5f : 1.75f;
        out_(&m, un(g, f, p0, p1, positive ? pos : x), "%s(x)", ir_unary_name(f));
        if (!positive)
            out_(&m, un(g, f, p0, p1, kc), "%s(constant)", ir_unary_name(f));
    }
    out_(&m, un(g, IR_UNARY_CLIP, -INFINITY, 0.5f, x), "clip(x, -inf, 0.5)");
    nncc_tensor *k7 = cst(g, SH(7), NULL, false, &s, 0.5, 2);
    nncc_tensor *k1 = cst(g, SH(1), NULL, false, &s, 0.5, 2);
    nncc_tensor *k57 = cst(g, SH(1, 5, 7), NULL, false, &s, 0.5, 2);
    nncc_tensor *k51 = cst(g, SH(5, 1), NULL, false, &s, 0.5, 2);
    nncc_tensor *k17 = cst(g, SH(1, 7), NULL, false, &s, 0.5, 2);
    for (int f = 0; f < IR_BINARY_COUNT; f++) {
        /* pow and div get positive bases and denominators. */
        nncc_tensor *a = f == IR_BINARY_POW ? pos : x;
        nncc_tensor *b = f == IR_BINARY_DIV ? pos : x;
        const char *nm = ir_binary_name(f);
        out_(&m, bin(g, f, a, b), "%s full", nm);
        out_(&m, bin(g, f, a, k7), "%s per-channel", nm);
        out_(&m, bin(g, f, k1, b), "%s scalar", nm);
        out_(&m, bin(g, f, k57, b), "%s constant sample", nm);
        out_(&m, bin(g, f, a, k51), "%s column (strided)", nm);
        out_(&m, bin(g, f, f == IR_BINARY_POW ? un(g, IR_UNARY_EXP, 0, 0, x3) : x3, b),
             "%s two batched", nm);
        out_(&m, bin(g, f, k51, k17), "%s two constants", nm);
    }
    for (int ax = -3; ax <= 3; ax++) {
        out_(&m, axis_op(g, IR_SOFTMAX, ax, x4), "softmax axis %d", ax);
        out_(&m, axis_op(g, IR_LOG_SOFTMAX, ax, x4), "log_softmax axis %d", ax);
    }
    out_(&m, axis_op(g, IR_SOFTMAX, -2, kc), "softmax constant axis 0");
    out_(&m, axis_op(g, IR_SOFTMAX, 0, kc), "softmax constant last axis");
    out_(&m, axis_op(g, IR_LOG_SOFTMAX, -2, kc), "log_softmax constant axis 0");
    out_(&m, axis_op(g, IR_SOFTMAX, 1, x), "softmax x axis 1");
    /* dense → bias → softmax along axis 1: no fused last-axis epilogue. */
    nncc_tensor *w = cst(g, SH(7, 4), NULL, false, &s, -1, 1), *bb = cst(g, SH(4), NULL, false, &s, -1, 1);
    nncc_tensor *mi[2] = {x, w};
    nncc_tensor *z = NN(op(g, IR_MATMUL, mi, 2, (struct ir_attrs){0}));
    nncc_tensor *bi[2] = {z, bb};
    z = NN(op(g, IR_BIAS_ADD, bi, 2, (struct ir_attrs){0}));
    nncc_tensor *sm_mid = axis_op(g, IR_SOFTMAX, 1, z);
    out_(&m, sm_mid, "dense softmax axis 1");
    /* ... and along the last axis the fused epilogue, as before. */
    z = NN(op(g, IR_MATMUL, mi, 2, (struct ir_attrs){0}));
    bi[0] = z;
    z = NN(op(g, IR_BIAS_ADD, bi, 2, (struct ir_attrs){0}));
    nncc_tensor *sm_last = axis_op(g, IR_SOFTMAX, -1, z);
    out_(&m, sm_last, "dense softmax last axis");

    struct ir_program p;
    OK(ir_program_init(&p, g, m.in, m.n_in, m.out, m.n_out));
    struct ir_plan plans[2];
    struct nncc_lower_opts lo = {.model_name = "eltwise"};
    if (nncc_lower(&p, &lo, plans))
        fail_msg("lower: %s", nncc_last_error());
    for (int i = 0; i < plans[0].program.n_nodes; i++) {
        const struct ir_node *nd = plans[0].program.nodes[i];
        if (nd->out == sm_mid)
            assert_int_not_equal(plans[0].groups[i].kind, IR_GROUP_MEMBER);
        if (nd->out == sm_last)
            assert_int_equal(plans[0].groups[i].kind, IR_GROUP_MEMBER);
    }
    struct cg_entry e = {.plan = &plans[0], .name = "nncc_forward", .prefix = ""};
    struct nncc_exec *ex = nncc_exec_build(&e, 1, "eltwise");
    if (!ex)
        fail_msg("build: %s", nncc_last_error());
    int bad = 0;
    for (int batch = 1; batch <= 37; batch += batch == 1 ? 4 : 32)
        bad += compare_forward(&m, ex, &plans[0].program, batch, &s);
    nncc_exec_free(ex);
    ir_plan_free(&plans[0]);
    ir_program_free(&p);
    nncc_graph_free(g);
    assert_int_equal(bad, 0);
}

/* ---- 3. Gradients -------------------------------------------------------- */

#define MAXP 160

struct gmodel {
    nncc_graph *g;
    nncc_tensor *x, *x2;
    nncc_tensor *params[MAXP];
    int n_params;
    nncc_tensor *branch[MAXP];
    int n_branch;
    uint64_t s;
};

static nncc_tensor *weight(struct gmodel *m, struct nncc_shape sh, double lo, double hi)
{
    assert_true(m->n_params < MAXP);
    return m->params[m->n_params++] = cst(m->g, sh, NULL, true, &m->s, lo, hi);
}

/* x (N, 3, 5) + a trainable (1, 3, 5): a batched value whose gradient
 * reaches a weight. */
static nncc_tensor *xb(struct gmodel *m)
{
    return bin(m->g, IR_BINARY_ADD, m->x, weight(m, SH(1, 3, 5), -0.5, 0.5));
}

static void branch(struct gmodel *m, nncc_tensor *t)
{
    assert_true(m->n_branch < MAXP);
    /* Every branch batched: a constant one is added to x's shape. */
    if (!t->batched)
        t = bin(m->g, IR_BINARY_ADD, m->x, t);
    struct ir_attrs r = {.target = SH(-1)};
    m->branch[m->n_branch++] = NN(op(m->g, IR_RESHAPE, &t, 1, r));
}

static void build_grad_model(struct gmodel *m)
{
    memset(m, 0, sizeof *m);
    m->g = nncc_graph_new();
    m->s = 7;
    nncc_graph *g = m->g;
    m->x = input(g, SH(N, 3, 5));
    m->x2 = input(g, SH(N, 1, 5));
    for (int f = 0; f < IR_UNARY_COUNT; f++) {
        bool positive = f == IR_UNARY_LOG || f == IR_UNARY_SQRT || f == IR_UNARY_RECIPROCAL;
        float p0 = f == IR_UNARY_CLIP ? -0.6f : f == IR_UNARY_HARD_SIGMOID ? 0.3f : 1.5f;
        float p1 = f == IR_UNARY_CLIP ? 0.7f : f == IR_UNARY_HARD_SIGMOID ? 0.5f : 1.75f;
        nncc_tensor *v = xb(m);
        branch(m, un(g, f, p0, p1, positive ? un(g, IR_UNARY_EXP, 0, 0, v) : v));
    }
    for (int f = 0; f < IR_BINARY_COUNT; f++) {
        bool pos_a = f == IR_BINARY_POW, pos_b = f == IR_BINARY_DIV;
        struct nncc_shape shapes[4] = {SH(5), SH(1), SH(3, 1), SH(1, 3, 5)};
        for (int k = 0; k < 4; k++) { /* the constant second, or first (odd k) */
            nncc_tensor *v = xb(m), *w = weight(m, shapes[k], -1, 1);
            nncc_tensor *a = k & 1 ? w : v, *b = k & 1 ? v : w;
            if (pos_a)
                a = un(g, IR_UNARY_EXP, 0, 0, a);
            if (pos_b)
                b = un(g, IR_UNARY_EXP, 0, 0, b);
            branch(m, bin(g, f, a, b));
        }
        /* Two batched: (N, 3, 5) with (N, 1, 5). */
        nncc_tensor *u = bin(g, IR_BINARY_ADD, m->x2, weight(m, SH(1, 1, 5), -0.5, 0.5));
        nncc_tensor *a = xb(m);
        if (pos_a)
            a = un(g, IR_UNARY_EXP, 0, 0, a);
        if (pos_b)
            u = un(g, IR_UNARY_EXP, 0, 0, u);
        branch(m, bin(g, f, a, u));
        /* Two constants: (3, 1) with (5). */
        nncc_tensor *c = weight(m, SH(3, 1), -1, 1), *d = weight(m, SH(5), -1, 1);
        if (pos_a)
            c = un(g, IR_UNARY_EXP, 0, 0, c);
        if (pos_b)
            d = un(g, IR_UNARY_EXP, 0, 0, d);
        branch(m, bin(g, f, c, d));
    }
    for (int ax = 1; ax <= 2; ax++) {
        branch(m, axis_op(g, IR_SOFTMAX, ax, xb(m)));
        branch(m, axis_op(g, IR_LOG_SOFTMAX, ax, xb(m)));
    }
    branch(m, axis_op(g, IR_SOFTMAX, -2, weight(m, SH(3, 5), -1, 1)));
    branch(m, axis_op(g, IR_LOG_SOFTMAX, -2, weight(m, SH(3, 5), -1, 1)));
    branch(m, axis_op(g, IR_LOG_SOFTMAX, 0, weight(m, SH(3, 5), -1, 1)));
}

static void test_gradients(void **state)
{
    (void)state;
    struct gmodel m;
    build_grad_model(&m);
    nncc_graph *g = m.g;
    /* Concatenated 12 at a time (autodiff takes nodes of up to 16 inputs). */
    nncc_tensor *parts[16];
    int n_parts = 0;
    for (int i = 0; i < m.n_branch; i += 12) {
        int c = m.n_branch - i < 12 ? m.n_branch - i : 12;
        assert_true(n_parts < 16);
        parts[n_parts++] = NN(op(g, IR_CONCAT, m.branch + i, c, (struct ir_attrs){.axis = 1}));
    }
    nncc_tensor *y = NN(op(g, IR_CONCAT, parts, n_parts, (struct ir_attrs){.axis = 1}));
    nncc_tensor *ins[2] = {m.x, m.x2};
    struct ir_program p;
    OK(ir_program_init(&p, g, ins, 2, &y, 1));
    struct nncc_train_spec ts = {.loss = NNCC_MEAN_SQUARED_ERROR, .target_shape = y->shape,
                                 .seed = 1, .params = m.params, .n_params = m.n_params,
                                 .gradients_only = true};
    struct ir_plan plans[2];
    struct nncc_lower_opts lo = {.model_name = "eltwise_grad", .train = &ts};
    if (nncc_lower(&p, &lo, plans))
        fail_msg("lower: %s", nncc_last_error());
    struct ir_program *train = &plans[0].program, *eval = &plans[1].program;
    assert_int_equal(train->n_outputs, 1 + m.n_params);
    const int batch = 3;
    float *in[3];
    int64_t counts[3] = {count(m.x, batch), count(m.x2, batch), batch * numel(y)};
    for (int i = 0; i < 3; i++) {
        in[i] = malloc(sizeof(float) * (size_t)counts[i]);
        for (int64_t j = 0; j < counts[i]; j++)
            in[i][j] = (float)urand(&m.s, -1, 1);
    }
    const double h[IR_HYPER_COUNT] = {[IR_HYPER_STEP] = 1, [IR_HYPER_SEED] = 1};
    double **go = calloc((size_t)train->n_outputs, sizeof *go);
    for (int k = 0; k < train->n_outputs; k++)
        go[k] = calloc((size_t)count(train->outputs[k], batch) + 1, sizeof **go);
    OK(nncc_interp_step_d(train, batch, (const float *const *)in, go, h, false));
    double loss, *lo_out[1] = {&loss};
    int bad = 0;
    double worst = 0;
    for (int k = 0; k < m.n_params; k++) {
        nncc_tensor *w = m.params[k];
        for (int64_t j = 0; j < numel(w); j++) {
            float keep = w->data[j];
            double l[2];
            for (int sgn = 0; sgn < 2; sgn++) {
                w->data[j] = keep + (sgn ? -0x1p-14f : 0x1p-14f);
                OK(nncc_interp_step_d(eval, batch, (const float *const *)in, lo_out, NULL, false));
                l[sgn] = loss;
            }
            w->data[j] = keep;
            double fd = (l[0] - l[1]) / (2 * 0x1p-14), an = go[1 + k][j];
            double tol = 1e-6 * fmax(fabs(fd), fabs(an)) + 1e-9;
            worst = fmax(worst, fabs(fd - an) / tol);
            if (!(fabs(fd - an) <= tol) && bad++ < 10)
                print_error("weight %d (%s)[%lld]: autodiff %.12g, differences %.12g\n", k,
                            w->name, (long long)j, an, fd);
        }
    }
    if (getenv("TEST_VERBOSE"))
        print_message("worst FD error: %.3g of the bound\n", worst);
    /* The generated gradient step against the oracle's. */
    struct cg_entry e = {.plan = &plans[0], .name = "grad_step", .prefix = "g"};
    struct nncc_exec *ex = nncc_exec_build(&e, 1, "eltwise_grad");
    if (!ex)
        fail_msg("build: %s", nncc_last_error());
    float **fo = calloc((size_t)train->n_outputs, sizeof *fo);
    for (int k = 0; k < train->n_outputs; k++)
        fo[k] = calloc((size_t)count(train->outputs[k], batch) + 1, sizeof **fo);
    float *ws = calloc(nncc_exec_ws_floats(&ex->entry[0], batch) + 1, sizeof *ws);
    ex->entry[0].step(batch, ex->entry[0].params, (const float *const *)in, fo, ws, h);
    for (int k = 0; k < train->n_outputs; k++) {
        int64_t c = count(train->outputs[k], batch);
        double rms = 0;
        for (int64_t j = 0; j < c; j++)
            rms += go[k][j] * go[k][j];
        rms = sqrt(rms / (double)c);
        for (int64_t j = 0; j < c; j++)
            if (!(fabs(fo[k][j] - go[k][j]) <= 1e-4 * fabs(go[k][j]) + 1e-4 * rms) && bad++ < 20)
                print_error("generated output %d[%lld]: %.9g, oracle %.9g\n", k, (long long)j,
                            (double)fo[k][j], go[k][j]);
    }
    for (int k = 0; k < train->n_outputs; k++)
        free(go[k]), free(fo[k]);
    free(go), free(fo), free(ws);
    for (int i = 0; i < 3; i++)
        free(in[i]);
    nncc_exec_free(ex);
    ir_plan_free(&plans[0]);
    ir_plan_free(&plans[1]);
    ir_program_free(&p);
    nncc_graph_free(g);
    assert_int_equal(bad, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unary_values),
        cmocka_unit_test(test_binary_values),
        cmocka_unit_test(test_binary_grad_values),
        cmocka_unit_test(test_shape_errors),
        cmocka_unit_test(test_softmax_axes_values),
        cmocka_unit_test(test_codegen_forward),
        cmocka_unit_test(test_gradients),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
