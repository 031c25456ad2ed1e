/*
 * test_interp: every op on tiny inputs whose outputs are worked out by hand
 * from Keras 2.15's formulas (the arithmetic is written next to each
 * expected value), so the reference interpreter, the oracle of every other
 * numeric test, is itself checked.  Each model gets its weights explicitly
 * with nncc_set_weights (Keras layouts: Dense kernel (in, units), Conv2D
 * kernel (kh, kw, in, filters)) and runs twice: through the reference
 * interpreter (.reference = true) and through the JIT-compiled code; both
 * are compared with the hand values.  Cases are grouped into a few
 * multi-input, multi-output models because every JIT compile costs ~0.5 s.
 *
 * Tolerances: the reference computes in double and rounds once to float, so
 * it must be within 1e-6 absolute (plus 2^-23 relative for that rounding
 * when |value| > 1); the compiled code computes in float, so it must be
 * within 1e-5 relative (with a 1e-6 absolute floor for values near 0).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include "nncc.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NONE NNCC_NONE
#define TENSORS(...) ((nncc_tensor *[]){__VA_ARGS__})
#define INPUTS(...) ((const float *const[]){__VA_ARGS__})
#define COUNT(a) ((int64_t)(sizeof(a) / sizeof((a)[0])))

#define REF_ABS 1e-6
#define REF_REL 0x1p-23 /* one float rounding of the double result */
#define JIT_ABS 1e-6
#define JIT_REL 1e-5

/* ---- Helpers ----------------------------------------------------------- */

#define OK(expr)                                                             \
    do {                                                                     \
        enum nncc_status st_ = (expr);                                       \
        if (st_ != NNCC_OK)                                                  \
            fail_msg("%s failed (%s): %s", #expr, nncc_status_name(st_),     \
                     nncc_last_error());                                     \
    } while (0)

#define NN(expr) nn_((expr), #expr, __FILE__, __LINE__)
static void *nn_(void *p, const char *what, const char *file, int line)
{
    if (!p) {
        print_error("%s:%d: %s is NULL: %s\n", file, line, what, nncc_last_error());
        _fail(file, line);
    }
    return p;
}

/* Sets weight i of the layer that produced y. */
static void setw(nncc_tensor *y, int i, const float *v, int64_t n)
{
    OK(nncc_set_weights(nncc_tensor_layer(y), i, v, n));
}

/* Counts (and prints the first few of) the values outside the tolerance. */
static int mismatches(const char *what, const char *path, const float *got, const double *want,
                      int64_t n, double abs_tol, double rel_tol)
{
    int bad = 0;
    for (int64_t i = 0; i < n; i++) {
        double tol = abs_tol + rel_tol * fabs(want[i]);
        double g = (double)got[i];
        if (!(fabs(g - want[i]) <= tol)) { /* NaN fails too */
            if (bad < 8)
                print_error("%s (%s) [%lld]: got %.9g, expected %.9g (diff %.3g, tol %.3g)\n",
                            what, path, (long long)i, g, want[i], fabs(g - want[i]), tol);
            bad++;
        }
    }
    return bad;
}

/* The arrays' shape is (n, dims…) and both the reference and the compiled
 * outputs match `want` (count values). */
static void check_(const char *what, const struct nncc_array *ref, const struct nncc_array *jit,
                   struct nncc_shape shape, const double *want, int64_t count, const char *file,
                   int line)
{
    int bad = 0;
    for (int k = 0; k < 2; k++) {
        const struct nncc_array *a = k ? jit : ref;
        const char *path = k ? "compiled" : "reference";
        bool same = a && a->shape.rank == shape.rank;
        for (int i = 0; same && i < shape.rank; i++)
            same = a->shape.dim[i] == shape.dim[i];
        if (!same) {
            char s1[160], s2[160];
            print_error("%s (%s): output shape %s, expected %s\n", what, path,
                        a ? nncc_shape_str(a->shape, s1, sizeof s1) : "(null)",
                        nncc_shape_str(shape, s2, sizeof s2));
            _fail(file, line);
        }
        if (nncc_array_size(a) != count) {
            print_error("%s (%s): %lld values, expected %lld\n", what, path,
                        (long long)nncc_array_size(a), (long long)count);
            _fail(file, line);
        }
        bad += k ? mismatches(what, path, a->data, want, count, JIT_ABS, JIT_REL)
                 : mismatches(what, path, a->data, want, count, REF_ABS, REF_REL);
    }
    if (bad)
        _fail(file, line);
}
#define CHECK(what, ref, jit, shape, want) \
    check_((what), (ref), (jit), (shape), (want), COUNT(want), __FILE__, __LINE__)

/* Runs m on n samples of each input through both paths. */
static void run_both(nncc_model *m, const float *const *xs, int64_t n, struct nncc_array **ref,
                     struct nncc_array **jit)
{
    OK(nncc_predict_rows_n(m, xs, n, ref, .reference = true));
    OK(nncc_predict_rows_n(m, xs, n, jit));
}

static void free_arrays(struct nncc_array **a, int n)
{
    for (int i = 0; i < n; i++)
        nncc_array_free(a[i]);
}

/* want[n..2n) = 2·want[0..n) + c: the second sample of a case is twice the
 * first, and a linear op of it is twice the first output (c = −bias for an
 * op with a bias b: 2(y − b) + b = 2y − b). */
static void second_twice(double *want, int64_t n, const double *bias, int64_t nb)
{
    for (int64_t i = 0; i < n; i++)
        want[n + i] = 2 * want[i] - (bias ? bias[i % nb] : 0.0);
}

static void twice_f(float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        x[n + i] = 2 * x[i];
}

/* ---- Dense ------------------------------------------------------------- */

static void test_dense(void **state)
{
    (void)state;
    nncc_graph *g = NN(nncc_graph_new());
    nncc_tensor *x2 = nncc_input(g, NNCC_SHAPE(2), .name = "x2");
    nncc_tensor *x22 = nncc_input(g, NNCC_SHAPE(2, 2), .name = "x22");
    nncc_tensor *x3 = nncc_input(g, NNCC_SHAPE(3), .name = "x3");
    nncc_tensor *a = nncc_dense(x2, .units = 3);
    nncc_tensor *b = nncc_dense(x22, .units = 3);
    nncc_tensor *c = nncc_dense(x3, .units = 2, .no_bias = true);
    nncc_model *m = NN(nncc_model_new_n(TENSORS(x2, x22, x3), 3, TENSORS(a, b, c), 3));
    assert_int_equal(nncc_layer_num_weights(nncc_tensor_layer(c)), 1);

    /* a: kernel (in 2, units 3) = [[1, 2, 3], [4, 5, 6]], bias [0.5, -1, 2]. */
    setw(a, 0, (const float[]){1, 2, 3, 4, 5, 6}, 6);
    setw(a, 1, (const float[]){0.5f, -1, 2}, 3);
    /* b (rank-3 input, contracts the last axis): kernel [[1, 0, -1], [2, 1, 0.5]],
     * bias [0, 1, -1]. */
    setw(b, 0, (const float[]){1, 0, -1, 2, 1, 0.5f}, 6);
    setw(b, 1, (const float[]){0, 1, -1}, 3);
    /* c: kernel (3, 2) = [[1, -1], [2, 0], [0.5, 3]], no bias. */
    setw(c, 0, (const float[]){1, -1, 2, 0, 0.5f, 3}, 6);

    const float in2[] = {1, -1, /**/ 0.5f, 2};
    const float in22[] = {1, 2, 3, 4, /**/ 0, -1, 2, 0.5f};
    const float in3[] = {2, -1, 4, /**/ 1, 1, 1};
    struct nncc_array *ref[3], *jit[3];
    run_both(m, INPUTS(in2, in22, in3), 2, ref, jit);

    /* x·W + b, W[i][j] = kernel[i*3 + j]:
     * [1, -1]:   [1-4+0.5, 2-5-1, 3-6+2]       = [-2.5, -4, -1]
     * [0.5, 2]:  [0.5+8+0.5, 1+10-1, 1.5+12+2] = [9, 10, 15.5]
     * (a kernel read as (units, in) would give other numbers). */
    static const double want_a[] = {-2.5, -4, -1, 9, 10, 15.5};
    CHECK("dense 2->3", ref[0], jit[0], NNCC_SHAPE(2, 3), want_a);
    /* Each row of the (2, 2) sample times [[1, 0, -1], [2, 1, 0.5]] + [0, 1, -1]:
     * [1, 2]:   [1+4, 0+2+1, -1+1-1]      = [5, 3, -1]
     * [3, 4]:   [3+8, 0+4+1, -3+2-1]      = [11, 5, -2]
     * [0, -1]:  [0-2, 0-1+1, 0-0.5-1]     = [-2, 0, -1.5]
     * [2, 0.5]: [2+1, 0+0.5+1, -2+0.25-1] = [3, 1.5, -2.75] */
    static const double want_b[] = {5, 3, -1, 11, 5, -2, -2, 0, -1.5, 3, 1.5, -2.75};
    CHECK("dense on rank 3", ref[1], jit[1], NNCC_SHAPE(2, 2, 3), want_b);
    /* [2, -1, 4]: [2-2+2, -2+0+12] = [2, 10];  [1, 1, 1]: [1+2+0.5, -1+0+3] = [3.5, 2] */
    static const double want_c[] = {2, 10, 3.5, 2};
    CHECK("dense no_bias", ref[2], jit[2], NNCC_SHAPE(2, 2), want_c);
    free_arrays(ref, 3);
    free_arrays(jit, 3);

    /* New weights reach already-compiled code (parameters are passed by
     * pointer): bias [0.5, -1, 2] → [1.5, 0, 3] adds 1 to every output of a. */
    setw(a, 1, (const float[]){1.5f, 0, 3}, 3);
    run_both(m, INPUTS(in2, in22, in3), 2, ref, jit);
    static const double want_a1[] = {-1.5, -3, 0, 10, 11, 16.5};
    CHECK("dense 2->3 after set_weights", ref[0], jit[0], NNCC_SHAPE(2, 3), want_a1);
    free_arrays(ref, 3);
    free_arrays(jit, 3);
    nncc_model_free(m);
}

/* ---- Activations ------------------------------------------------------- */

/* The Keras 2.15 formulas, written independently of ir/activations.def. */
static double keras_act(enum nncc_activation a, double x)
{
    switch (a) {
    case NNCC_LINEAR: return x;
    case NNCC_RELU: return x > 0 ? x : 0;
    case NNCC_SIGMOID: return 1 / (1 + exp(-x));
    case NNCC_TANH: return tanh(x);
    case NNCC_ELU: return x > 0 ? x : exp(x) - 1;
    case NNCC_SELU: return 1.0507009873554805 * (x > 0 ? x : 1.6732632423543772 * (exp(x) - 1));
    case NNCC_SOFTPLUS: return log(1 + exp(x));
    case NNCC_SOFTSIGN: return x / (1 + fabs(x));
    case NNCC_HARD_SIGMOID: return fmin(1, fmax(0, 0.2 * x + 0.5));
    case NNCC_SWISH: return x * (1 / (1 + exp(-x)));
    case NNCC_GELU: return 0.5 * x * (1 + erf(x / sqrt(2.0)));
    case NNCC_LEAKY_RELU: return x < 0 ? 0.2 * x : x;
    default: fail_msg("no formula for activation %d", (int)a);
    }
    return 0;
}

static void test_activations(void **state)
{
    (void)state;
    /* The formulas above against values worked out by hand / from tables,
     * so that a slip in them cannot hide a slip in the library. */
    struct { enum nncc_activation a; double x, y; } spot[] = {
        {NNCC_SIGMOID, 1, 0.7310585786300049},         /* 1/(1+e^-1) */
        {NNCC_TANH, 0.5, 0.46211715726000974},
        {NNCC_ELU, -1, -0.6321205588285577},           /* e^-1 - 1 */
        {NNCC_SELU, -1, -1.1113307378125625},          /* 1.0507·1.6733·(e^-1 - 1) */
        {NNCC_SELU, 3, 3.1521029620664414},            /* 1.0507009873554805·3 */
        {NNCC_SOFTPLUS, 0, 0.6931471805599453},        /* log 2 */
        {NNCC_SOFTSIGN, -3, -0.75},                    /* -3/4 */
        {NNCC_HARD_SIGMOID, -3, 0},                    /* 0.2·-3+0.5 = -0.1 → 0 */
        {NNCC_HARD_SIGMOID, 1, 0.7},                   /* K3's x/6+0.5 would be 0.667 */
        {NNCC_HARD_SIGMOID, 3, 1},                     /* 1.1 → 1 */
        {NNCC_SWISH, 1, 0.7310585786300049},           /* 1·sigmoid(1) */
        {NNCC_GELU, 1, 0.8413447460685429},            /* Φ(1); tanh approx: 0.841192 */
        {NNCC_GELU, -0.5, -0.15426876936299347},       /* -0.5·Φ(-0.5) */
        {NNCC_LEAKY_RELU, -0.5, -0.1},                 /* slope 0.2 (the layer's 0.3 is not it) */
    };
    for (size_t i = 0; i < sizeof spot / sizeof spot[0]; i++)
        if (fabs(keras_act(spot[i].a, spot[i].x) - spot[i].y) > 1e-12)
            fail_msg("formula for %s(%g): %.17g, hand value %.17g",
                     nncc_activation_name(spot[i].a), spot[i].x, keras_act(spot[i].a, spot[i].x),
                     spot[i].y);

    nncc_graph *g = NN(nncc_graph_new());
    nncc_tensor *x = nncc_input(g, NNCC_SHAPE(7), .name = "x");
    nncc_tensor *s = nncc_input(g, NNCC_SHAPE(3), .name = "s");
    enum { NACT = NNCC_ACTIVATION_COUNT };
    nncc_tensor *outs[NACT + 1];
    for (int a = 0; a < NACT; a++)
        outs[a] = nncc_activation(x, .activation = (enum nncc_activation)a);
    outs[NACT] = nncc_activation(s, .activation = NNCC_SOFTMAX);
    nncc_model *m = NN(nncc_model_new_n(TENSORS(x, s), 2, outs, NACT + 1));

    const float xv[14] = {-3, -1, -0.5f, 0, 0.5f, 1, 3, /**/ -2, -0.25f, 0.25f, 2, 4, -4, 0.1f};
    /* The second softmax row would overflow e^x without the max subtracted. */
    const float sv[6] = {1, 2, 3, /**/ 1000, 1001, 1002};
    struct nncc_array *ref[NACT + 1], *jit[NACT + 1];
    run_both(m, INPUTS(xv, sv), 2, ref, jit);

    for (int a = 0; a < NACT; a++) {
        double want[14];
        if (a == NNCC_SOFTMAX) {
            /* e^{x_i} / Σ_j e^{x_j} per row of 7 (small values: no overflow) */
            for (int r = 0; r < 2; r++) {
                double sum = 0;
                for (int i = 0; i < 7; i++)
                    sum += exp((double)xv[r * 7 + i]);
                for (int i = 0; i < 7; i++)
                    want[r * 7 + i] = exp((double)xv[r * 7 + i]) / sum;
            }
        } else {
            for (int i = 0; i < 14; i++)
                want[i] = keras_act((enum nncc_activation)a, (double)xv[i]);
        }
        char what[64];
        snprintf(what, sizeof what, "activation %s", nncc_activation_name((enum nncc_activation)a));
        CHECK(what, ref[a], jit[a], NNCC_SHAPE(2, 7), want);
    }
    /* softmax([1, 2, 3]) = [e^-2, e^-1, 1]/(e^-2 + e^-1 + 1)
     *                    = [0.0900305731703805, 0.244728471054798, 0.665240955774822];
     * softmax([1000, 1001, 1002]) is the same (shift invariance). */
    static const double want_s[] = {0.09003057317038046, 0.24472847105479764, 0.6652409557748219,
                                    0.09003057317038046, 0.24472847105479764, 0.6652409557748219};
    CHECK("softmax of a 3-vector", ref[NACT], jit[NACT], NNCC_SHAPE(2, 3), want_s);
    for (int k = 0; k < 2; k++) {
        const struct nncc_array *arr[] = {ref[NNCC_SOFTMAX], ref[NACT], jit[NNCC_SOFTMAX], jit[NACT]};
        for (int j = 0; j < 4; j++) {
            int64_t cols = arr[j]->shape.dim[1];
            double sum = 0;
            for (int64_t i = 0; i < cols; i++)
                sum += arr[j]->data[k * cols + i];
            if (fabs(sum - 1) > 1e-6)
                fail_msg("softmax row %d of output %d sums to %.9g, not 1", k, j, sum);
        }
    }
    free_arrays(ref, NACT + 1);
    free_arrays(jit, NACT + 1);
    nncc_model_free(m);
}

/* LeakyReLU and ELU layers with their alpha, against hand-worked values. */
static void test_activation_alpha(void **state)
{
    (void)state;
    nncc_graph *g = NN(nncc_graph_new());
    nncc_tensor *x = nncc_input(g, NNCC_SHAPE(4), .name = "x");
    nncc_tensor *outs[] = {nncc_leaky_relu(x), nncc_leaky_relu(x, .alpha = -0.5f),
                           nncc_elu(x), nncc_elu(x, .alpha = 2.0f)};
    nncc_model *m = NN(nncc_model_new_n(TENSORS(x), 1, outs, 4));
    const float xv[8] = {-2, -0.5f, 0, 3, /**/ -1, 1, -4, 0.25f};
    struct nncc_array *ref[4], *jit[4];
    run_both(m, INPUTS(xv), 2, ref, jit);
    const double e1 = exp(-1.0) - 1, e2 = exp(-2.0) - 1, eh = exp(-0.5) - 1, e4 = exp(-4.0) - 1;
    /* LeakyReLU's default slope is Keras' 0.3 as a float32; the activation
     * string "leaky_relu" has 0.2 (test_activations). */
    const double a3 = (double)0.3f;
    const double want[4][8] = {
        {-2 * a3, -0.5 * a3, 0, 3, -a3, 1, -4 * a3, 0.25},
        {1, 0.25, 0, 3, 0.5, 1, 2, 0.25},          /* a negative slope mirrors */
        {e2, eh, 0, 3, e1, 1, e4, 0.25},           /* alpha 1: plain elu */
        {2 * e2, 2 * eh, 0, 3, 2 * e1, 1, 2 * e4, 0.25},
    };
    static const char *const what[] = {"LeakyReLU()", "LeakyReLU(alpha=-0.5)", "ELU()",
                                        "ELU(alpha=2)"};
    for (int k = 0; k < 4; k++)
        CHECK(what[k], ref[k], jit[k], NNCC_SHAPE(2, 4), want[k]);
    free_arrays(ref, 4);
    free_arrays(jit, 4);
    nncc_model_free(m);
}

/* ---- Conv2D ------------------------------------------------------------ */

static void test_conv2d(void **state)
{
    (void)state;
    nncc_graph *g = NN(nncc_graph_new());
    nncc_tensor *a3 = nncc_input(g, NNCC_SHAPE(3, 3, 1), .name = "a3");
    nncc_tensor *b5 = nncc_input(g, NNCC_SHAPE(5, 5, 1), .name = "b5");
    nncc_tensor *c2 = nncc_input(g, NNCC_SHAPE(2, 2, 2), .name = "c2");
    nncc_tensor *valid = nncc_conv2d(a3, .filters = 1, .kernel_size = {2, 2});
    nncc_tensor *same = nncc_conv2d(b5, .filters = 1, .kernel_size = {2, 2}, .strides = {2, 2},
                                    .padding = NNCC_SAME, .no_bias = true);
    nncc_tensor *dil = nncc_conv2d(b5, .filters = 1, .kernel_size = {2, 2},
                                   .dilation_rate = {2, 2});
    nncc_tensor *chan = nncc_conv2d(c2, .filters = 2, .kernel_size = {2, 2});
    nncc_model *m = NN(nncc_model_new_n(TENSORS(a3, b5, c2), 3,
                                        TENSORS(valid, same, dil, chan), 4));

    /* One-channel kernels k[kh][kw] = [[1, 2], [3, 4]] (asymmetric, so a
     * flipped kernel — a true convolution — gives other numbers). */
    const float k1234[] = {1, 2, 3, 4};
    setw(valid, 0, k1234, 4);
    setw(valid, 1, (const float[]){0.5f}, 1);
    setw(same, 0, k1234, 4);
    setw(dil, 0, k1234, 4);
    setw(dil, 1, (const float[]){-2}, 1);
    /* 2 in × 2 filters: for tap t = kh·2 + kw the (in c, filter f) matrix is
     * (t+1)·[[1, 2], [0, -1]], laid out (kh, kw, c, f). */
    float kc[16];
    for (int t = 0; t < 4; t++) {
        kc[t * 4 + 0] = (float)(t + 1) * 1;  /* c0 → f0 */
        kc[t * 4 + 1] = (float)(t + 1) * 2;  /* c0 → f1 */
        kc[t * 4 + 2] = 0;                   /* c1 → f0 */
        kc[t * 4 + 3] = (float)(t + 1) * -1; /* c1 → f1 */
    }
    setw(chan, 0, kc, 16);
    setw(chan, 1, (const float[]){0.5f, -1}, 2);

    /* Sample 1: a3 = [[1,2,3],[4,5,6],[7,8,9]]; b5[r][c] = 5r + c + 1
     * (1…25); c2[h][w] = {1,2}, {3,4} / {5,6}, {7,8}.  Sample 2 = 2 × sample 1. */
    float av[18], bv[50], cv[16];
    for (int i = 0; i < 9; i++)
        av[i] = (float)(i + 1);
    for (int i = 0; i < 25; i++)
        bv[i] = (float)(i + 1);
    for (int i = 0; i < 8; i++)
        cv[i] = (float)(i + 1);
    twice_f(av, 9);
    twice_f(bv, 25);
    twice_f(cv, 8);
    struct nncc_array *ref[4], *jit[4];
    run_both(m, INPUTS(av, bv, cv), 2, ref, jit);

    /* valid, stride 1: out[i][j] = 1·x[i][j] + 2·x[i][j+1] + 3·x[i+1][j] + 4·x[i+1][j+1] + 0.5
     *   [0][0] = 1 + 4 + 12 + 20 + .5 = 37.5     [0][1] = 2 + 6 + 15 + 24 + .5 = 47.5
     *   [1][0] = 4 + 10 + 21 + 32 + .5 = 67.5    [1][1] = 5 + 12 + 24 + 36 + .5 = 77.5
     * (a flipped kernel would give [0][0] = 4 + 6 + 8 + 5 + .5 = 23.5) */
    double want_v[8] = {37.5, 47.5, 67.5, 77.5};
    second_twice(want_v, 4, (const double[]){0.5}, 1);
    CHECK("conv2d valid", ref[0], jit[0], NNCC_SHAPE(2, 2, 2, 1), want_v);

    /* same, stride 2 on 5×5: out = ⌈5/2⌉ = 3, P = (3−1)·2 + 2 − 5 = 1, all of
     * it at the bottom/right.  out[i][j] = 1·x[2i][2j] + 2·x[2i][2j+1] +
     * 3·x[2i+1][2j] + 4·x[2i+1][2j+1], taps past row/col 4 reading zero:
     *   [0][0] = 1 + 4 + 18 + 28 = 51     [0][1] = 3 + 8 + 24 + 36 = 71
     *   [0][2] = 5 + 0 + 30 + 0 = 35      (x[0][4] = 5, x[1][4] = 10)
     *   [1][0] = 11 + 24 + 48 + 68 = 151  [1][1] = 13 + 28 + 54 + 76 = 171
     *   [1][2] = 15 + 60 = 75             [2][0] = 21 + 44 = 65
     *   [2][1] = 23 + 48 = 71             [2][2] = 25 (only x[4][4] is real)
     * With the extra pixel at the top/left instead, [0][0] would be 4·x[0][0] = 4
     * and [2][2] would be x[3][3] + 2x[3][4] + 3x[4][3] + 4x[4][4] = 19+40+72+100. */
    double want_s[18] = {51, 71, 35, 151, 171, 75, 65, 71, 25};
    second_twice(want_s, 9, NULL, 0);
    CHECK("conv2d same stride 2", ref[1], jit[1], NNCC_SHAPE(2, 3, 3, 1), want_s);

    /* dilation 2: k' = 3, out = 5 − 3 + 1 = 3.  With v = x[i][j] = 5i + j + 1:
     * 1·x[i][j] + 2·x[i][j+2] + 3·x[i+2][j] + 4·x[i+2][j+2] − 2
     *   = v + 2(v+2) + 3(v+10) + 4(v+12) − 2 = 10v + 80
     *   [0][0] = 90, [0][1] = 100, [0][2] = 110, [1][0] = 140 … [2][2] = 10·13 + 80 = 210 */
    double want_d[18];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            want_d[i * 3 + j] = 10.0 * (5 * i + j + 1) + 80;
    assert_true(want_d[0] == 90 && want_d[8] == 210);
    second_twice(want_d, 9, (const double[]){-2}, 1);
    CHECK("conv2d dilation 2", ref[2], jit[2], NNCC_SHAPE(2, 3, 3, 1), want_d);

    /* 2 channels × 2 filters, valid → 1×1×2.  Taps t = 0…3 hold x = {1,2},
     * {3,4}, {5,6}, {7,8}:
     *   f0 = Σ (t+1)·(1·c0 + 0·c1) + 0.5  = 1·1 + 2·3 + 3·5 + 4·7 + 0.5 = 50.5
     *   f1 = Σ (t+1)·(2·c0 − 1·c1) − 1    = 1·0 + 2·2 + 3·4 + 4·6 − 1 = 39
     * (swapping c and f in the layout, or kh and kw, changes both). */
    double want_c[4] = {50.5, 39};
    second_twice(want_c, 2, (const double[]){0.5, -1}, 2);
    CHECK("conv2d 2 in x 2 filters", ref[3], jit[3], NNCC_SHAPE(2, 1, 1, 2), want_c);
    free_arrays(ref, 4);
    free_arrays(jit, 4);
    nncc_model_free(m);
}

/* ---- Pooling ----------------------------------------------------------- */

static void test_pooling(void **state)
{
    (void)state;
    nncc_graph *g = NN(nncc_graph_new());
    nncc_tensor *d4 = nncc_input(g, NNCC_SHAPE(4, 4, 1), .name = "d4");
    nncc_tensor *e5 = nncc_input(g, NNCC_SHAPE(5, 5, 2), .name = "e5");
    nncc_tensor *a3 = nncc_input(g, NNCC_SHAPE(3, 3, 1), .name = "a3");
    nncc_tensor *c2 = nncc_input(g, NNCC_SHAPE(2, 2, 2), .name = "c2");
    nncc_tensor *mx = nncc_maxpool2d(d4, .pool_size = {2, 2});
    nncc_tensor *av = nncc_avgpool2d(d4, .pool_size = {2, 2});
    nncc_tensor *mxs = nncc_maxpool2d(e5, .pool_size = {2, 2}, .padding = NNCC_SAME);
    nncc_tensor *avs = nncc_avgpool2d(a3, .pool_size = {2, 2}, .strides = {2, 2},
                                      .padding = NNCC_SAME);
    nncc_tensor *gap = nncc_global_avgpool2d(c2);
    nncc_model *m = NN(nncc_model_new_n(TENSORS(d4, e5, a3, c2), 4,
                                        TENSORS(mx, av, mxs, avs, gap), 5));

    /* d4 = [[ 1,  5,  2, 0],
     *       [ 3, -1,  8, 4],
     *       [-2, -4,  6, 7],
     *       [-9, -1, -3, 2]]   (bottom-left window all negative)
     * e5[r][c] = {−(5r+c+1), +(5r+c+1)} (channel 0 all negative);
     * a3 = [[1,2,3],[4,5,6],[7,8,9]]; c2 as in test_conv2d.
     * Sample 2 = 2 × sample 1 (max and mean commute with ×2). */
    float dv[32] = {1, 5, 2, 0, 3, -1, 8, 4, -2, -4, 6, 7, -9, -1, -3, 2};
    float ev[100], a3v[18], cv[16];
    for (int i = 0; i < 25; i++) {
        ev[2 * i] = -(float)(i + 1);
        ev[2 * i + 1] = (float)(i + 1);
    }
    for (int i = 0; i < 9; i++)
        a3v[i] = (float)(i + 1);
    for (int i = 0; i < 8; i++)
        cv[i] = (float)(i + 1);
    twice_f(dv, 16);
    twice_f(ev, 50);
    twice_f(a3v, 9);
    twice_f(cv, 8);
    struct nncc_array *ref[5], *jit[5];
    run_both(m, INPUTS(dv, ev, a3v, cv), 2, ref, jit);

    /* max 2×2: {1,5,3,-1} → 5, {2,0,8,4} → 8, {-2,-4,-9,-1} → -1, {6,7,-3,2} → 7 */
    double want_mx[8] = {5, 8, -1, 7};
    second_twice(want_mx, 4, NULL, 0);
    CHECK("maxpool 2x2", ref[0], jit[0], NNCC_SHAPE(2, 2, 2, 1), want_mx);
    /* average 2×2: (1+5+3-1)/4 = 2, (2+0+8+4)/4 = 3.5, (-2-4-9-1)/4 = -4, (6+7-3+2)/4 = 3 */
    double want_av[8] = {2, 3.5, -4, 3};
    second_twice(want_av, 4, NULL, 0);
    CHECK("avgpool 2x2", ref[1], jit[1], NNCC_SHAPE(2, 2, 2, 1), want_av);

    /* max 'same' 2×2 stride 2 on 5×5: out 3×3, one padded row/column at the
     * bottom/right.  Window (i, j) covers rows 2i, 2i+1 and columns 2j, 2j+1
     * (clipped to 4).  Channel 0 = −(5r+c+1): max at the window's first cell,
     * −(10i + 2j + 1); a padded cell read as 0 would win every right/bottom
     * window ([0][2], [2][2]: 0 instead of −5, −25).  Channel 1: max at the
     * last real cell, 5·min(2i+1, 4) + min(2j+1, 4) + 1. */
    double want_mxs[36];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
            want_mxs[(i * 3 + j) * 2] = -(10.0 * i + 2 * j + 1);
            want_mxs[(i * 3 + j) * 2 + 1] = 5.0 * (2 * i + 1 < 4 ? 2 * i + 1 : 4) +
                                            (2 * j + 1 < 4 ? 2 * j + 1 : 4) + 1;
        }
    /* spelled out: ch0 [-1,-3,-5,-11,-13,-15,-21,-23,-25], ch1 [7,9,10,17,19,20,22,24,25] */
    assert_true(want_mxs[16] == -25 && want_mxs[17] == 25 && want_mxs[5] == 10);
    second_twice(want_mxs, 18, NULL, 0);
    CHECK("maxpool same 5x5", ref[2], jit[2], NNCC_SHAPE(2, 3, 3, 2), want_mxs);

    /* average 'same' 2×2 stride 2 on 3×3: out 2×2, padding bottom/right; the
     * divisor counts the real cells only:
     *   [0][0] (1+2+4+5)/4 = 3     [0][1] (3+6)/2 = 4.5 (edge: 2 real cells)
     *   [1][0] (7+8)/2 = 7.5       [1][1] 9/1 = 9   (corner: 1 real cell, not 9/4) */
    double want_avs[8] = {3, 4.5, 7.5, 9};
    second_twice(want_avs, 4, NULL, 0);
    CHECK("avgpool same 3x3", ref[3], jit[3], NNCC_SHAPE(2, 2, 2, 1), want_avs);

    /* global average over the 2×2 positions: c0 (1+3+5+7)/4 = 4, c1 (2+4+6+8)/4 = 5 */
    double want_gap[4] = {4, 5};
    second_twice(want_gap, 2, NULL, 0);
    CHECK("global avgpool", ref[4], jit[4], NNCC_SHAPE(2, 2), want_gap);
    free_arrays(ref, 5);
    free_arrays(jit, 5);
    nncc_model_free(m);
}

/* ---- Reshaping, merging, batch normalization -------------------------- */

static void test_shape_merge_batchnorm(void **state)
{
    (void)state;
    nncc_graph *g = NN(nncc_graph_new());
    nncc_tensor *p = nncc_input(g, NNCC_SHAPE(2, 3), .name = "p");
    nncc_tensor *q = nncc_input(g, NNCC_SHAPE(1, 3), .name = "q");
    nncc_tensor *r = nncc_input(g, NNCC_SHAPE(2, 3), .name = "r");
    nncc_tensor *s = nncc_input(g, NNCC_SHAPE(2, 3), .name = "s");
    nncc_tensor *c2 = nncc_input(g, NNCC_SHAPE(2, 2, 2), .name = "c2");
    nncc_tensor *flat = nncc_flatten(c2);
    nncc_tensor *resh = nncc_reshape(c2, .target_shape = NNCC_SHAPE(4, -1));
    nncc_tensor *drop = nncc_dropout(p, .rate = 0.5f);
    nncc_tensor *add3 = nncc_add(TENSORS(p, r, s), 3);
    nncc_tensor *addb = nncc_add(TENSORS(p, q), 2);
    nncc_tensor *cat_last = nncc_concatenate(TENSORS(p, r), 2);
    nncc_tensor *cat_1 = nncc_concatenate(TENSORS(p, q), 2, .axis = 1);
    nncc_tensor *bn_last = nncc_batchnorm(p);
    nncc_tensor *bn_1 = nncc_batchnorm(p, .axis = 1, .epsilon = 0.5f);
    enum { NOUT = 9 };
    nncc_model *m = NN(nncc_model_new_n(
        TENSORS(p, q, r, s, c2), 5,
        TENSORS(flat, resh, drop, add3, addb, cat_last, cat_1, bn_last, bn_1), NOUT));

    /* gamma, beta, moving_mean, moving_variance */
    const float g3[] = {1, 2, 0.5f}, b3[] = {0, 1, -1}, m3[] = {1, -1, 0}, v3[] = {1, 4, 0.25f};
    setw(bn_last, 0, g3, 3);
    setw(bn_last, 1, b3, 3);
    setw(bn_last, 2, m3, 3);
    setw(bn_last, 3, v3, 3);
    const float g2[] = {2, -1}, b2[] = {0.5f, 0}, m2[] = {2, 5}, v2[] = {1, 0.5f};
    setw(bn_1, 0, g2, 2);
    setw(bn_1, 1, b2, 2);
    setw(bn_1, 2, m2, 2);
    setw(bn_1, 3, v2, 2);

    /* p = [[1,2,3],[4,5,6]], q = [[100,200,300]], r = 10·p, s = [[-1,-1,-1],[-2,-2,-2]],
     * c2 = 1…8 (h, w, c order).  Sample 2 = 2 × sample 1. */
    float pv[12] = {1, 2, 3, 4, 5, 6}, qv[6] = {100, 200, 300}, rv[12] = {10, 20, 30, 40, 50, 60},
          sv[12] = {-1, -1, -1, -2, -2, -2}, cv[16] = {1, 2, 3, 4, 5, 6, 7, 8};
    twice_f(pv, 6);
    twice_f(qv, 3);
    twice_f(rv, 6);
    twice_f(sv, 6);
    twice_f(cv, 8);
    struct nncc_array *ref[NOUT], *jit[NOUT];
    run_both(m, INPUTS(pv, qv, rv, sv, cv), 2, ref, jit);

    /* Flatten of NHWC (2, 2, 2) is row-major with channels fastest: the
     * sample's memory order, 1…8 (NCHW order would be 1,3,5,7,2,4,6,8). */
    double want_flat[16] = {1, 2, 3, 4, 5, 6, 7, 8};
    second_twice(want_flat, 8, NULL, 0);
    CHECK("flatten", ref[0], jit[0], NNCC_SHAPE(2, 8), want_flat);
    /* Reshape to (4, -1) = (4, 2): same order */
    CHECK("reshape (4, -1)", ref[1], jit[1], NNCC_SHAPE(2, 4, 2), want_flat);
    /* Dropout at inference: identity */
    double want_p[12] = {1, 2, 3, 4, 5, 6};
    second_twice(want_p, 6, NULL, 0);
    CHECK("dropout at inference", ref[2], jit[2], NNCC_SHAPE(2, 2, 3), want_p);
    /* p + r + s = [1+10-1, 2+20-1, 3+30-1, 4+40-2, 5+50-2, 6+60-2] */
    double want_add3[12] = {10, 21, 32, 42, 53, 64};
    second_twice(want_add3, 6, NULL, 0);
    CHECK("add of 3", ref[3], jit[3], NNCC_SHAPE(2, 2, 3), want_add3);
    /* (None, 2, 3) + (None, 1, 3): q's row is added to both rows of p */
    double want_addb[12] = {101, 202, 303, 104, 205, 306};
    second_twice(want_addb, 6, NULL, 0);
    CHECK("add broadcast", ref[4], jit[4], NNCC_SHAPE(2, 2, 3), want_addb);
    /* concatenate axis -1: each row of p, then the same row of r */
    double want_cl[24] = {1, 2, 3, 10, 20, 30, 4, 5, 6, 40, 50, 60};
    second_twice(want_cl, 12, NULL, 0);
    CHECK("concatenate axis -1", ref[5], jit[5], NNCC_SHAPE(2, 2, 6), want_cl);
    /* concatenate axis 1: p's two rows, then q's one row */
    double want_c1[18] = {1, 2, 3, 4, 5, 6, 100, 200, 300};
    second_twice(want_c1, 9, NULL, 0);
    CHECK("concatenate axis 1", ref[6], jit[6], NNCC_SHAPE(2, 3, 3), want_c1);

    /* BatchNormalization at inference: (x − mean)/√(var + ε)·γ + β.
     * axis −1 (3 channels), ε = 1e-3, e.g. sample 1:
     *   [0][0] (1−1)/√1.001·1 + 0 = 0
     *   [0][1] (2+1)/√4.001·2 + 1 = 6/2.00024998 + 1 = 3.99962507…
     *   [0][2] (3−0)/√0.251·0.5 − 1 = 1.5/0.50099900 − 1 = 1.99401794…
     * axis 1 (2 channels = the rows, 3 values each), ε = 0.5:
     *   row 0 (x−2)/√1.5·2 + 0.5:  x = 1 → −2/1.22474487 + 0.5 = −1.13299316…
     *   row 1 (x−5)/√1.0·(−1) + 0: x = 4 → 1, x = 5 → 0, x = 6 → −1 */
    double want_bl[12], want_b1[12];
    for (int i = 0; i < 12; i++) {
        int c = i % 3, row = (i / 3) % 2;
        want_bl[i] = ((double)pv[i] - m3[c]) / sqrt((double)v3[c] + 1e-3) * g3[c] + b3[c];
        want_b1[i] = ((double)pv[i] - m2[row]) / sqrt((double)v2[row] + 0.5) * g2[row] + b2[row];
    }
    assert_true(fabs(want_bl[1] - 3.9996250702978546) < 1e-9);
    assert_true(fabs(want_bl[2] - 1.9940179402092473) < 1e-9);
    assert_true(fabs(want_b1[0] - -1.1329931618554521) < 1e-12);
    assert_true(want_b1[3] == 1 && want_b1[4] == 0 && want_b1[5] == -1);
    CHECK("batchnorm axis -1", ref[7], jit[7], NNCC_SHAPE(2, 2, 3), want_bl);
    CHECK("batchnorm axis 1", ref[8], jit[8], NNCC_SHAPE(2, 2, 3), want_b1);
    free_arrays(ref, NOUT);
    free_arrays(jit, NOUT);
    nncc_model_free(m);
}

/* ---- Multi-input, multi-output ----------------------------------------- */

static void test_two_inputs_two_outputs(void **state)
{
    (void)state;
    nncc_graph *g = NN(nncc_graph_new());
    nncc_tensor *a = nncc_input(g, NNCC_SHAPE(2), .name = "a");
    nncc_tensor *b = nncc_input(g, NNCC_SHAPE(2), .name = "b");
    nncc_tensor *sum = nncc_add(TENSORS(a, b), 2);
    nncc_tensor *lin = nncc_dense(a, .units = 1, .no_bias = true);
    /* Inputs and outputs listed in the opposite order from their creation:
     * xs[0] feeds b and outs[0] is the Dense. */
    nncc_model *m = NN(nncc_model_new_n(TENSORS(b, a), 2, TENSORS(lin, sum), 2));
    setw(lin, 0, (const float[]){1, 10}, 2);
    const float av[] = {1, 2, 3, 4}, bv[] = {10, 20, 30, 40};
    struct nncc_array *ref[2], *jit[2];
    run_both(m, INPUTS(bv, av), 2, ref, jit);
    /* lin = a0 + 10·a1: 1 + 20 = 21, 3 + 40 = 43 (fed b instead: 10 + 200 = 210) */
    static const double want_lin[] = {21, 43};
    CHECK("two outputs: dense(a)", ref[0], jit[0], NNCC_SHAPE(2, 1), want_lin);
    static const double want_sum[] = {11, 22, 33, 44};
    CHECK("two outputs: a + b", ref[1], jit[1], NNCC_SHAPE(2, 2), want_sum);
    free_arrays(ref, 2);
    free_arrays(jit, 2);
    nncc_model_free(m);
}

/* ---- Batches ----------------------------------------------------------- */

static void test_batch_splitting(void **state)
{
    (void)state;
    /* conv → pool → flatten → dense → softmax with seeded weights: batches of
     * 2 (2 + 2 + 1) must give what one batch of 5 gives. */
    nncc_graph *g = NN(nncc_graph_new());
    nncc_graph_set_seed(g, 3);
    nncc_tensor *x = nncc_input(g, NNCC_SHAPE(6, 6, 2));
    nncc_tensor *h = nncc_conv2d(x, .filters = 4, .kernel_size = {3, 3}, .padding = NNCC_SAME,
                                 .activation = NNCC_RELU, .bias_initializer = NNCC_ONES);
    h = nncc_maxpool2d(h);
    h = nncc_flatten(h);
    nncc_tensor *y = nncc_dense(h, .units = 5, .activation = NNCC_SOFTMAX);
    nncc_model *m = NN(nncc_model_new(x, y));
    enum { N = 5, PER = 6 * 6 * 2 };
    float xv[N * PER];
    uint32_t st = 12345;
    for (int i = 0; i < N * PER; i++) {
        st = st * 1664525u + 1013904223u;
        xv[i] = (float)((double)(st >> 8) / 16777216.0 * 2 - 1);
    }
    struct nncc_array *r2 = NN(nncc_predict_rows(m, xv, N, .batch_size = 2, .reference = true));
    struct nncc_array *r5 = NN(nncc_predict_rows(m, xv, N, .batch_size = 5, .reference = true));
    struct nncc_array *j2 = NN(nncc_predict_rows(m, xv, N, .batch_size = 2));
    struct nncc_array *j5 = NN(nncc_predict_rows(m, xv, N, .batch_size = 5));
    struct nncc_array *jd = NN(nncc_predict_rows(m, xv, N)); /* default 32 → one batch of 5 */
    assert_int_equal(r2->shape.rank, 2);
    assert_int_equal(r2->shape.dim[0], N);
    assert_int_equal(r2->shape.dim[1], 5);
    assert_int_equal(j2->shape.dim[0], N);
    /* The reference is exact per sample, whatever the batch. */
    assert_memory_equal(r2->data, r5->data, sizeof(float) * N * 5);
    double want[N * 5];
    for (int i = 0; i < N * 5; i++)
        want[i] = r5->data[i];
    assert_int_equal(mismatches("batch 2 vs 5", "compiled", j2->data, want, N * 5, JIT_ABS, JIT_REL), 0);
    assert_int_equal(mismatches("batch 5", "compiled", j5->data, want, N * 5, JIT_ABS, JIT_REL), 0);
    assert_int_equal(mismatches("batch default", "compiled", jd->data, want, N * 5, JIT_ABS, JIT_REL), 0);
    for (int i = 0; i < N * 5; i++) /* the last sample was really computed */
        assert_true(j2->data[i] > 0 && j2->data[i] < 1);
    nncc_array_free(r2);
    nncc_array_free(r5);
    nncc_array_free(j2);
    nncc_array_free(j5);
    nncc_array_free(jd);
    nncc_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dense),
        cmocka_unit_test(test_activations),
        cmocka_unit_test(test_activation_alpha),
        cmocka_unit_test(test_conv2d),
        cmocka_unit_test(test_pooling),
        cmocka_unit_test(test_shape_merge_batchnorm),
        cmocka_unit_test(test_two_inputs_two_outputs),
        cmocka_unit_test(test_batch_splitting),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
