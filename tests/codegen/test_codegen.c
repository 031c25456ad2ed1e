/*
 * test_codegen: differential tests of the generated C (codegen/, compiled
 * through the JIT) against the reference interpreter (runtime/oracle/interp.c).
 * A few models, each with many branches and outputs, cover every op and
 * every activation on shapes chosen by a fixed-seed PRNG plus hand-picked
 * edge cases (odd sizes, SAME padding, strides, dilations, broadcasting,
 * views as outputs); biases and batch-normalization statistics are set to
 * random values.  Each model is run both ways for n = 1, 5 and 37 samples
 * (batch_size 8, so the last batch is partial) and every output compared;
 * the generated code must also give bit-identical results for batch sizes
 * 1 and 16.  Finally the emitted source must compile warning-free as ISO
 * C11 under gcc and clang, with and without OpenMP, also when layer, input
 * and model names hold comment terminators, newlines, quotes, #include and
 * non-ASCII bytes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include "nncc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define T(...) ((nncc_tensor *[]){__VA_ARGS__})

/* ---- A small deterministic PRNG (splitmix64) ---------------------------- */

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform in [lo, hi). */
static float urand(uint64_t *s, float lo, float hi)
{
    return lo + (hi - lo) * (float)((double)(rng_next(s) >> 11) * 0x1.0p-53);
}

/* Uniform integer in [lo, hi]. */
static int irand(uint64_t *s, int lo, int hi)
{
    return lo + (int)(rng_next(s) % (uint64_t)(hi - lo + 1));
}

/* ---- Models with many branches ------------------------------------------ */

#define MAX_IN 48
#define MAX_OUT 128

struct branches {
    nncc_graph *g;
    nncc_tensor *in[MAX_IN];
    int n_in;
    nncc_tensor *out[MAX_OUT];
    char desc[MAX_OUT][160]; /* what each output tests, for failure messages */
    int n_out;
};

static struct branches *branches_new(uint64_t weight_seed)
{
    struct branches *b = calloc(1, sizeof *b);
    assert_non_null(b);
    b->g = nncc_graph_new();
    assert_non_null(b->g);
    nncc_graph_set_seed(b->g, weight_seed);
    return b;
}

static nncc_tensor *add_input(struct branches *b, struct nncc_shape s)
{
    assert_true(b->n_in < MAX_IN);
    nncc_tensor *t = nncc_input(b->g, s);
    if (!t)
        fail_msg("input: %s", nncc_last_error());
    return b->in[b->n_in++] = t;
}

/* A tensor that must exist (the layer call succeeded). */
static nncc_tensor *ok_(nncc_tensor *t, const char *expr, int line)
{
    if (!t)
        fail_msg("line %d: %s failed: %s", line, expr, nncc_last_error());
    return t;
}
#define OK(t) ok_((t), #t, __LINE__)

static void add_output(struct branches *b, nncc_tensor *t, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void add_output(struct branches *b, nncc_tensor *t, const char *fmt, ...)
{
    assert_true(b->n_out < MAX_OUT);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->desc[b->n_out], sizeof b->desc[0], fmt, ap);
    va_end(ap);
    if (!t)
        fail_msg("building output \"%s\": %s", b->desc[b->n_out], nncc_last_error());
    b->out[b->n_out++] = t;
}

static nncc_model *make_model(struct branches *b, const char *name)
{
    nncc_model *m = nncc_model_new_n(b->in, b->n_in, b->out, b->n_out, .name = name);
    if (!m)
        fail_msg("model %s: %s", name, nncc_last_error());
    b->g = NULL; /* the model owns it now */
    return m;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* Kernels keep their seeded Glorot values; biases and every batch-norm
 * weight get random values so that they matter (Keras initialises them to
 * zeros and ones).  Moving variances stay positive. */
static void randomize_weights(nncc_model *m, uint64_t seed)
{
    uint64_t s = seed;
    for (int i = 0; i < nncc_model_num_layers(m); i++) {
        nncc_layer *l = nncc_model_layer(m, i);
        for (int w = 0; w < nncc_layer_num_weights(l); w++) {
            const char *name = nncc_layer_weight_name(l, w);
            struct nncc_shape sh = nncc_layer_weight_shape(l, w);
            int64_t count = 1;
            for (int d = 0; d < sh.rank; d++)
                count *= sh.dim[d];
            float lo, hi;
            if (ends_with(name, "/bias") || ends_with(name, "/beta") ||
                ends_with(name, "/moving_mean"))
                lo = -1.0f, hi = 1.0f;
            else if (ends_with(name, "/gamma"))
                lo = -1.5f, hi = 1.5f;
            else if (ends_with(name, "/moving_variance"))
                lo = 0.25f, hi = 2.0f;
            else
                continue;
            float *v = malloc(sizeof *v * (size_t)count);
            assert_non_null(v);
            for (int64_t k = 0; k < count; k++)
                v[k] = urand(&s, lo, hi);
            assert_int_equal(nncc_set_weights(l, w, v, count), NNCC_OK);
            free(v);
        }
    }
}

/* ---- Running both ways and comparing ------------------------------------ */

static int64_t per_sample(struct nncc_shape s)
{
    int64_t k = 1;
    for (int d = 1; d < s.rank; d++)
        k *= s.dim[d];
    return k;
}

static float **make_inputs(nncc_model *m, int64_t n, uint64_t seed)
{
    int k = nncc_model_num_inputs(m);
    float **xs = calloc((size_t)k, sizeof *xs);
    assert_non_null(xs);
    uint64_t s = seed;
    for (int i = 0; i < k; i++) {
        int64_t count = n * per_sample(nncc_tensor_shape(nncc_model_input(m, i)));
        xs[i] = malloc(sizeof *xs[i] * (size_t)count);
        assert_non_null(xs[i]);
        /* [-3, 3) reaches every activation's interesting region: both
         * signs, hard_sigmoid's clipping beyond ±2.5, elu/selu's curve. */
        for (int64_t j = 0; j < count; j++)
            xs[i][j] = urand(&s, -3.0f, 3.0f);
    }
    return xs;
}

static void free_arrays(struct nncc_array **a, int k)
{
    for (int i = 0; i < k; i++)
        nncc_array_free(a[i]);
    free(a);
}

static struct nncc_array **run(nncc_model *m, float **xs, int64_t n, bool reference, int bs)
{
    int k = nncc_model_num_outputs(m);
    struct nncc_array **outs = calloc((size_t)k, sizeof *outs);
    assert_non_null(outs);
    enum nncc_status st = nncc_predict_rows_n(m, (const float *const *)xs, n, outs,
                                              .reference = reference, .batch_size = bs);
    if (st != NNCC_OK)
        fail_msg("predict (%s, n %lld, batch_size %d): %s", reference ? "reference" : "generated",
                 (long long)n, bs, nncc_last_error());
    return outs;
}

/*
 * Tolerance: |got − ref| ≤ 1e-5 · (1 + |ref|).  The generated code
 * accumulates in float (ε = 6e-8), in its own order, and folds batch
 * normalization into x·s + t; the interpreter accumulates in double and
 * rounds once.  Inputs are in [-3, 3), kernels Glorot-scaled and every
 * reduction here has at most 125 terms (a 5x5 Conv2D on 5 channels, Dense
 * on 120 features), so the float rounding error stays around
 * √terms · ε · Σ|terms| ≈ 1e-6 absolute, well below the bound (the largest
 * seen is 7% of it); libm's float exp/tanh/erf/expm1/log1p are within a
 * few ulp (≈ 2e-7 relative).  A kernel that reads a wrong element, skips
 * padding wrongly or divides by the wrong count is off by O(0.1) or more.
 */
#define RTOL 1e-5

/* Runs the model on n samples both ways (the generated code with batches of
 * bs) and compares every output; prints every branch that disagrees. */
static void compare(nncc_model *m, const struct branches *b, int64_t n, int bs, uint64_t seed)
{
    int k = nncc_model_num_outputs(m);
    assert_int_equal(k, b->n_out);
    float **xs = make_inputs(m, n, seed);
    struct nncc_array **ref = run(m, xs, n, true, 0);
    struct nncc_array **got = run(m, xs, n, false, bs);
    int bad = 0;
    for (int o = 0; o < k; o++) {
        struct nncc_shape rs = ref[o]->shape, gs = got[o]->shape;
        assert_int_equal(rs.rank, gs.rank);
        for (int d = 0; d < rs.rank; d++)
            assert_int_equal(rs.dim[d], gs.dim[d]);
        assert_int_equal(rs.dim[0], n);
        int64_t count = nncc_array_size(ref[o]), worst = -1, n_bad = 0;
        double max_err = 0, max_ratio = 0;
        for (int64_t i = 0; i < count; i++) {
            double r = ref[o]->data[i], g = got[o]->data[i];
            double err = fabs(g - r), tol = RTOL * (1.0 + fabs(r));
            if (!(err <= tol)) { /* NaN fails too */
                n_bad++;
                if (worst < 0 || !(err / tol <= max_ratio)) {
                    worst = i;
                    max_ratio = err / tol;
                    max_err = err;
                }
            }
        }
        if (n_bad) {
            char s0[160];
            print_error("output %d [%s] %s, n %lld, batch_size %d: %lld of %lld values differ; "
                        "worst at flat index %lld: generated %.9g, reference %.9g, |error| %.3g "
                        "(%.3g x tolerance)\n",
                        o, b->desc[o], nncc_shape_str(rs, s0, sizeof s0), (long long)n, bs,
                        (long long)n_bad, (long long)count, (long long)worst,
                        (double)got[o]->data[worst], (double)ref[o]->data[worst], max_err,
                        max_ratio);
            bad++;
        }
        /* With many samples, a branch whose reference is all zeros would
         * compare nothing: every branch here is built to be non-trivial. */
        if (n >= 37) {
            bool nonzero = false;
            for (int64_t i = 0; i < count && !nonzero; i++)
                nonzero = ref[o]->data[i] != 0.0f;
            if (!nonzero) {
                print_error("output %d [%s]: the reference is all zeros\n", o, b->desc[o]);
                bad++;
            }
        }
    }
    free_arrays(ref, k);
    free_arrays(got, k);
    for (int i = 0; i < nncc_model_num_inputs(m); i++)
        free(xs[i]);
    free(xs);
    if (bad)
        fail_msg("%d of %d outputs failed (see above): the generated code and the interpreter "
                 "disagree, or the reference is trivial (n %lld, batch_size %d)",
                 bad, k, (long long)n, bs);
}

/* The generated code must not depend on the batch size: batches of 1 and
 * of 16 give identical floats (kernels are per-sample loops; only the
 * trip count of the outer loop changes). */
static void check_batch_invariance(nncc_model *m, const struct branches *b, uint64_t seed)
{
    const int64_t n = 37;
    int k = nncc_model_num_outputs(m);
    float **xs = make_inputs(m, n, seed);
    struct nncc_array **a = run(m, xs, n, false, 1);
    struct nncc_array **c = run(m, xs, n, false, 16);
    int bad = 0;
    for (int o = 0; o < k; o++) {
        int64_t count = nncc_array_size(a[o]);
        assert_int_equal(count, nncc_array_size(c[o]));
        for (int64_t i = 0; i < count; i++)
            if (memcmp(&a[o]->data[i], &c[o]->data[i], sizeof(float)) != 0) {
                print_error("output %d [%s]: flat index %lld is %.9g with batch_size 1 but %.9g "
                            "with batch_size 16\n",
                            o, b->desc[o], (long long)i, (double)a[o]->data[i],
                            (double)c[o]->data[i]);
                bad++;
                break;
            }
    }
    free_arrays(a, k);
    free_arrays(c, k);
    for (int i = 0; i < nncc_model_num_inputs(m); i++)
        free(xs[i]);
    free(xs);
    if (bad)
        fail_msg("%d outputs depend on the batch size", bad);
}

/* The whole protocol for one model. */
static void check_model(nncc_model *m, const struct branches *b, uint64_t seed)
{
    compare(m, b, 1, 8, seed + 1);
    compare(m, b, 5, 8, seed + 2);
    compare(m, b, 37, 8, seed + 3);
    check_batch_invariance(m, b, seed + 4);
}

/* ---- Model 1: Dense, activations, softmax (three inputs) ----------------- */

static const int odd_units[] = {1, 3, 7, 17, 33};

static nncc_model *build_dense_model(struct branches *b)
{
    nncc_tensor *x2 = add_input(b, NNCC_SHAPE(17));
    nncc_tensor *x3 = add_input(b, NNCC_SHAPE(3, 7));
    nncc_tensor *x4 = add_input(b, NNCC_SHAPE(2, 3, 5));
    nncc_tensor *x1 = add_input(b, NNCC_SHAPE(1)); /* a one-feature input */
    nncc_tensor *xs[] = {x2, x3, x4};
    const char *xname[] = {"(17)", "(3, 7)", "(2, 3, 5)"};

    /* Every activation as a Dense activation; units and input rank cycle
     * through every odd size and rank 2, 3, 4, bias on and off. */
    for (int a = 0; a < NNCC_ACTIVATION_COUNT; a++) {
        int which = a % 3, units = odd_units[a % 5];
        bool no_bias = a % 4 >= 2;
        if (a == NNCC_SOFTMAX)
            which = 1, units = 7; /* softmax on rank 3 */
        nncc_tensor *y = nncc_dense(xs[which], .units = units, .activation = a,
                                    .no_bias = no_bias);
        add_output(b, y, "Dense x %s units %d %s activation %s", xname[which], units,
                   no_bias ? "no bias" : "bias", nncc_activation_name(a));
    }
    /* Every activation as an Activation layer, on the raw inputs. */
    for (int a = 0; a < NNCC_ACTIVATION_COUNT; a++) {
        int which = (a + 1) % 3;
        nncc_tensor *y = nncc_activation(xs[which], .activation = a);
        add_output(b, y, "Activation %s on x %s", nncc_activation_name(a), xname[which]);
    }
    /* LeakyReLU and ELU layers with their alpha (activation_alpha), on
     * every rank, the Keras defaults and others, a negative slope too. */
    add_output(b, nncc_leaky_relu(x2), "LeakyReLU (alpha 0.3) on x (17)");
    add_output(b, nncc_leaky_relu(x4, .alpha = -0.75f), "LeakyReLU alpha -0.75 on x (2, 3, 5)");
    add_output(b, nncc_elu(x3), "ELU (alpha 1) on x (3, 7)");
    add_output(b, nncc_elu(OK(nncc_dense(x2, .units = 9)), .alpha = 2.5f),
               "ELU alpha 2.5 on Dense 9 of x (17)");
    /* Softmax layers on rank 3 and 4 (over the last axis), and one of a
     * single class (all ones). */
    add_output(b, nncc_activation(x4, .activation = NNCC_SOFTMAX), "Activation softmax rank 4");
    add_output(b, nncc_dense(x4, .units = 1, .activation = NNCC_SOFTMAX),
               "Dense rank 4 units 1 softmax");
    /* The (units, rank) pairs the loop above missed. */
    add_output(b, nncc_dense(x3, .units = 17, .no_bias = true), "Dense x (3, 7) units 17 no bias");
    add_output(b, nncc_dense(x4, .units = 33), "Dense x (2, 3, 5) units 33 bias");
    add_output(b, nncc_dense(x2, .units = 1, .no_bias = true), "Dense x (17) units 1 no bias");
    /* A one-feature input (K = 1), and Dense stacked on rank 3. */
    add_output(b, nncc_dense(x1, .units = 3, .activation = NNCC_TANH), "Dense x (1) units 3 tanh");
    nncc_tensor *h = OK(nncc_dense(x3, .units = 33, .activation = NNCC_GELU));
    add_output(b, nncc_dense(h, .units = 1), "Dense(33, gelu) then Dense 1 on rank 3");
    /* Two inputs feeding one branch. */
    nncc_tensor *f4 = OK(nncc_flatten(x4));
    nncc_tensor *ab = OK(nncc_concatenate(T(x2, f4), 2));
    add_output(b, nncc_dense(ab, .units = 7, .activation = NNCC_SWISH),
               "Dense 7 swish on concat(x (17), flatten x (2, 3, 5))");
    return make_model(b, "codegen_dense");
}

static void test_dense_and_activations(void **state)
{
    (void)state;
    struct branches *b = branches_new(11);
    nncc_model *m = build_dense_model(b);
    randomize_weights(m, 12);
    check_model(m, b, 13);
    nncc_model_free(m);
    free(b);
}

/* ---- Model 2: Conv2D and pooling ----------------------------------------- */

struct conv_case {
    int h, w, c;
    int kh, kw, sh, sw;
    enum nncc_padding pad;
    int dh, dw;
    int filters;
    bool no_bias;
    enum nncc_activation act;
};

static const struct conv_case conv_cases[] = {
    /* h w c  kh kw sh sw  pad        dh dw  f  no_bias act */
    {7, 7, 3, 1, 1, 1, 1, NNCC_VALID, 1, 1, 4, false, NNCC_LINEAR},
    {7, 7, 3, 2, 2, 2, 2, NNCC_SAME, 1, 1, 7, true, NNCC_LINEAR},
    {7, 7, 3, 3, 3, 1, 1, NNCC_SAME, 1, 1, 1, false, NNCC_RELU},
    {7, 7, 3, 3, 3, 3, 3, NNCC_SAME, 1, 1, 4, true, NNCC_LINEAR},
    {7, 7, 3, 2, 2, 3, 3, NNCC_VALID, 1, 1, 4, false, NNCC_LINEAR}, /* stride > kernel */
    {8, 5, 5, 3, 3, 2, 2, NNCC_VALID, 1, 1, 4, false, NNCC_LINEAR},
    {8, 5, 5, 5, 3, 1, 1, NNCC_SAME, 1, 1, 7, false, NNCC_TANH},
    {8, 5, 5, 5, 3, 1, 2, NNCC_VALID, 1, 1, 4, false, NNCC_LINEAR},
    {8, 5, 5, 2, 2, 1, 1, NNCC_SAME, 1, 1, 4, false, NNCC_LINEAR}, /* even kernel: odd pad */
    {2, 3, 1, 3, 3, 1, 1, NNCC_SAME, 1, 1, 4, false, NNCC_LINEAR},
    {2, 3, 1, 2, 2, 2, 1, NNCC_VALID, 1, 1, 7, true, NNCC_LINEAR},
    {1, 1, 3, 3, 3, 1, 1, NNCC_SAME, 1, 1, 7, false, NNCC_LINEAR},
    {7, 7, 3, 3, 3, 1, 1, NNCC_VALID, 2, 2, 4, false, NNCC_LINEAR},
    {8, 5, 5, 3, 2, 1, 1, NNCC_SAME, 2, 3, 4, false, NNCC_SIGMOID},
    {8, 5, 5, 5, 3, 1, 1, NNCC_SAME, 2, 3, 1, true, NNCC_LINEAR}, /* 9x7 window on 8x5 */
};

struct pool_case {
    int h, w, c;
    int ph, pw, sh, sw; /* strides 0: the default (the pool size) */
    enum nncc_padding pad;
};

static const struct pool_case pool_cases[] = {
    {7, 7, 3, 2, 2, 0, 0, NNCC_VALID},
    {7, 7, 3, 2, 2, 0, 0, NNCC_SAME},
    {7, 7, 3, 3, 3, 1, 1, NNCC_SAME},
    {7, 7, 3, 3, 3, 2, 2, NNCC_VALID},
    {7, 7, 3, 2, 2, 3, 3, NNCC_VALID}, /* stride larger than the window */
    {8, 5, 5, 2, 3, 0, 0, NNCC_SAME},
    {8, 5, 5, 2, 3, 1, 2, NNCC_SAME},
    {8, 5, 5, 3, 3, 3, 3, NNCC_SAME},
    {2, 3, 1, 3, 3, 0, 0, NNCC_SAME},
    {1, 1, 3, 2, 2, 0, 0, NNCC_SAME},
};

static nncc_tensor *image_input(struct branches *b, int h, int w, int c)
{
    /* One model input per distinct image shape. */
    for (int i = 0; i < b->n_in; i++) {
        struct nncc_shape s = nncc_tensor_shape(b->in[i]);
        if (s.rank == 4 && s.dim[1] == h && s.dim[2] == w && s.dim[3] == c)
            return b->in[i];
    }
    return add_input(b, NNCC_SHAPE(h, w, c));
}

static void add_conv(struct branches *b, struct conv_case k)
{
    nncc_tensor *x = image_input(b, k.h, k.w, k.c);
    nncc_tensor *y = nncc_conv2d(x, .filters = k.filters, .kernel_size = {k.kh, k.kw},
                                 .strides = {k.sh, k.sw}, .padding = k.pad,
                                 .dilation_rate = {k.dh, k.dw}, .activation = k.act,
                                 .no_bias = k.no_bias);
    add_output(b, y,
               "Conv2D x (%d, %d, %d) kernel %dx%d strides %dx%d %s dilation %dx%d filters %d "
               "%s %s",
               k.h, k.w, k.c, k.kh, k.kw, k.sh, k.sw, k.pad == NNCC_SAME ? "same" : "valid", k.dh,
               k.dw, k.filters, k.no_bias ? "no bias" : "bias", nncc_activation_name(k.act));
}

static nncc_model *build_spatial_model(struct branches *b)
{
    uint64_t s = 202;
    for (size_t i = 0; i < sizeof conv_cases / sizeof conv_cases[0]; i++)
        add_conv(b, conv_cases[i]);
    /* Random cases: sizes 1–9, kernels 1–5, strides 1–3 or dilations
     * 1–3 (Keras forbids both > 1), either padding. */
    static const int chans[] = {1, 3, 5}, filts[] = {1, 4, 7};
    for (int i = 0; i < 5; i++) {
        struct conv_case k = {
            .h = irand(&s, 1, 9), .w = irand(&s, 1, 9), .c = chans[irand(&s, 0, 2)],
            .kh = irand(&s, 1, 5), .kw = irand(&s, 1, 5), .sh = 1, .sw = 1, .dh = 1, .dw = 1,
            .pad = irand(&s, 0, 1) ? NNCC_SAME : NNCC_VALID, .filters = filts[irand(&s, 0, 2)],
            .no_bias = irand(&s, 0, 1), .act = irand(&s, 0, NNCC_ACTIVATION_COUNT - 1),
        };
        if (irand(&s, 0, 1))
            k.sh = irand(&s, 1, 3), k.sw = irand(&s, 1, 3);
        else
            k.dh = irand(&s, 1, 3), k.dw = irand(&s, 1, 3);
        if (k.h < k.kh + (k.kh - 1) * (k.dh - 1) || k.w < k.kw + (k.kw - 1) * (k.dw - 1))
            k.pad = NNCC_SAME; /* a valid output would be empty */
        add_conv(b, k);
    }
    /* Max and average pooling, each window. */
    for (size_t i = 0; i < sizeof pool_cases / sizeof pool_cases[0]; i++) {
        struct pool_case p = pool_cases[i];
        nncc_tensor *x = image_input(b, p.h, p.w, p.c);
        for (int max = 0; max < 2; max++) {
            struct nncc_pool2d_opts o = {.pool_size = {p.ph, p.pw}, .strides = {p.sh, p.sw},
                                         .padding = p.pad};
            nncc_layer *l = max ? nncc_maxpool2d_layer_(o) : nncc_avgpool2d_layer_(o);
            nncc_tensor *y = nncc_apply_n(l, T(x), 1);
            add_output(b, y, "%s x (%d, %d, %d) pool %dx%d strides %dx%d %s",
                       max ? "MaxPooling2D" : "AveragePooling2D", p.h, p.w, p.c, p.ph, p.pw, p.sh,
                       p.sw, p.pad == NNCC_SAME ? "same" : "valid");
        }
    }
    /* Global average pooling, with and without keepdims. */
    static const int gap[][4] = {{7, 7, 3, 0}, {8, 5, 5, 1}, {2, 3, 1, 0}, {1, 1, 3, 1},
                                 {8, 5, 5, 0}};
    for (int i = 0; i < 5; i++) {
        nncc_tensor *x = image_input(b, gap[i][0], gap[i][1], gap[i][2]);
        add_output(b, nncc_global_avgpool2d(x, .keepdims = gap[i][3]),
                   "GlobalAveragePooling2D x (%d, %d, %d)%s", gap[i][0], gap[i][1], gap[i][2],
                   gap[i][3] ? " keepdims" : "");
    }
    /* A small CNN: conv → pool → conv → GAP → dense softmax. */
    nncc_tensor *x = image_input(b, 8, 5, 5);
    nncc_tensor *h = OK(nncc_conv2d(x, .filters = 4, .kernel_size = {3, 3}, .padding = NNCC_SAME,
                                    .activation = NNCC_RELU));
    h = OK(nncc_maxpool2d(h, .pool_size = {2, 2}, .padding = NNCC_SAME));
    h = OK(nncc_conv2d(h, .filters = 7, .kernel_size = {2, 2}, .strides = {1, 2},
                       .activation = NNCC_ELU));
    h = OK(nncc_avgpool2d(h, .pool_size = {2, 1}, .strides = {1, 1}));
    h = OK(nncc_global_avgpool2d(h));
    add_output(b, nncc_dense(h, .units = 3, .activation = NNCC_SOFTMAX),
               "CNN conv same relu, maxpool same, conv {1,2} elu, avgpool 2x1, GAP, dense softmax");
    return make_model(b, "codegen_spatial");
}

static void test_conv_and_pooling(void **state)
{
    (void)state;
    struct branches *b = branches_new(21);
    nncc_model *m = build_spatial_model(b);
    randomize_weights(m, 22);
    check_model(m, b, 23);
    nncc_model_free(m);
    free(b);
}

/* ---- Model 3: shapes, merges, batch normalization, views ------------------ */

static nncc_model *build_merge_model(struct branches *b)
{
    nncc_tensor *img = add_input(b, NNCC_SHAPE(4, 5, 3));
    nncc_tensor *a413 = add_input(b, NNCC_SHAPE(4, 1, 3));
    nncc_tensor *a15 = add_input(b, NNCC_SHAPE(1, 5));
    nncc_tensor *a35 = add_input(b, NNCC_SHAPE(3, 5));
    nncc_tensor *a32 = add_input(b, NNCC_SHAPE(3, 2));
    nncc_tensor *a37 = add_input(b, NNCC_SHAPE(3, 7));
    nncc_tensor *a45 = add_input(b, NNCC_SHAPE(4, 5));
    nncc_tensor *a25 = add_input(b, NNCC_SHAPE(2, 5));
    nncc_tensor *a314 = add_input(b, NNCC_SHAPE(3, 1, 4));
    nncc_tensor *a324 = add_input(b, NNCC_SHAPE(3, 2, 4));
    nncc_tensor *a334 = add_input(b, NNCC_SHAPE(3, 3, 4));
    nncc_tensor *v9 = add_input(b, NNCC_SHAPE(9));

    /* Views as outputs: the input itself through Flatten (copied from
     * in[k]), Reshape with -1 and Dropout of computed values (copied from
     * the workspace), a view of a view, and views feeding compute. */
    add_output(b, nncc_flatten(img), "Flatten of the input (4, 5, 3): a view of in[0]");
    add_output(b, OK(nncc_reshape(OK(nncc_flatten(a35)), .target_shape = NNCC_SHAPE(5, -1))),
               "Reshape (5, -1) of Flatten of an input: a view of a view");
    nncc_tensor *d = OK(nncc_dense(img, .units = 6, .activation = NNCC_TANH));
    add_output(b, nncc_reshape(d, .target_shape = NNCC_SHAPE(-1, 8)),
               "Reshape (-1, 8) of Dense (4, 5, 6)");
    add_output(b, nncc_dropout(d, .rate = 0.5f), "Dropout 0.5 of Dense (4, 5, 6): identity");
    add_output(b, nncc_dense(OK(nncc_dropout(OK(nncc_flatten(d)), .rate = 0.3f)), .units = 3),
               "Dense 3 on Dropout of Flatten");
    add_output(b, nncc_reshape(v9, .target_shape = NNCC_SHAPE(3, -1, 1)),
               "Reshape (3, -1, 1) of an input (9)");
    add_output(b, nncc_dropout(v9, .rate = 0.1f), "Dropout of an input (9)");
    /* An output that other outputs are views of (they copy from out[k]), the
     * same tensor twice, and an input itself. */
    add_output(b, d, "Dense (4, 5, 6) tanh, also viewed by other outputs");
    add_output(b, d, "Dense (4, 5, 6) tanh again: the same tensor as a second output");
    add_output(b, a35, "the input (3, 5) itself");

    /* Add: 2 and 3 inputs of one shape, broadcasting on size-1 dims. */
    add_output(b, nncc_add(T(a35, a35), 2), "Add x + x (3, 5)");
    nncc_tensor *d35 = OK(nncc_dense(a32, .units = 5));
    add_output(b, nncc_add(T(a35, d35, a35), 3), "Add of 3 (3, 5)");
    add_output(b, nncc_add(T(a413, img), 2), "Add broadcast (4, 1, 3) + (4, 5, 3)");
    add_output(b, nncc_add(T(img, a413), 2), "Add broadcast (4, 5, 3) + (4, 1, 3)");
    add_output(b, nncc_add(T(a15, a35), 2), "Add broadcast (1, 5) + (3, 5)");
    add_output(b, nncc_add(T(a35, a15, d35), 3), "Add broadcast (3, 5) + (1, 5) + (3, 5)");
    nncc_tensor *g113 = OK(nncc_global_avgpool2d(img, .keepdims = true));
    add_output(b, nncc_add(T(img, g113, a413), 3),
               "Add broadcast (4, 5, 3) + GAP keepdims (1, 1, 3) + (4, 1, 3)");
    nncc_tensor *r451 = OK(nncc_dense(img, .units = 1));
    add_output(b, nncc_add(T(r451, a413), 2), "Add broadcast (4, 5, 1) + (4, 1, 3) -> (4, 5, 3)");
    /* Inputs of lower rank align after the batch (Keras expands their dims). */
    nncc_tensor *v5 = OK(nncc_dense(v9, .units = 5));
    add_output(b, nncc_add(T(v5, a35), 2), "Add broadcast rank 2 (5) + rank 3 (3, 5)");
    add_output(b, nncc_add(T(a35, a15, v5), 3), "Add broadcast (3, 5) + (1, 5) + rank 2 (5)");

    /* Concatenate on axes -1, 1, 2 with 2–4 inputs of different sizes. */
    add_output(b, nncc_concatenate(T(a35, a32), 2), "Concatenate axis -1 (3, 5) (3, 2)");
    add_output(b, nncc_concatenate(T(a35, a32, a37), 3),
               "Concatenate axis -1 (3, 5) (3, 2) (3, 7)");
    add_output(b, nncc_concatenate(T(a35, a15, a45, a25), 4, .axis = 1),
               "Concatenate axis 1 (3, 5) (1, 5) (4, 5) (2, 5)");
    add_output(b, nncc_concatenate(T(a314, a334), 2, .axis = 2),
               "Concatenate axis 2 (3, 1, 4) (3, 3, 4)");
    add_output(b, nncc_concatenate(T(a324, a314, a334), 3, .axis = 2),
               "Concatenate axis 2 (3, 2, 4) (3, 1, 4) (3, 3, 4)");
    add_output(b, nncc_concatenate(T(a324, a324, a314, a334), 4, .axis = -2),
               "Concatenate axis -2 (3, 2, 4) x2 (3, 1, 4) (3, 3, 4)");
    add_output(b, nncc_concatenate(T(img, img, d), 3), "Concatenate axis -1 (4, 5, 3) x2 + (4, 5, 6)");
    add_output(b, nncc_concatenate(T(img, a413), 2, .axis = 2),
               "Concatenate axis 2 (4, 5, 3) (4, 1, 3)");
    add_output(b, nncc_concatenate(T(a314, a314), 2, .axis = 1),
               "Concatenate axis 1 (3, 1, 4) x2");

    /* Batch normalization on rank 2, 3 and 4, axis -1 and 1, with and
     * without gamma / beta, random statistics. */
    add_output(b, nncc_batchnorm(v9), "BatchNormalization (9) axis -1");
    add_output(b, nncc_batchnorm(v9, .no_scale = true), "BatchNormalization (9) no_scale");
    add_output(b, nncc_batchnorm(v9, .no_center = true, .epsilon = 0.1f),
               "BatchNormalization (9) no_center epsilon 0.1");
    add_output(b, nncc_batchnorm(v9, .no_scale = true, .no_center = true, .axis = 1),
               "BatchNormalization (9) axis 1 no_scale no_center");
    add_output(b, nncc_batchnorm(img), "BatchNormalization (4, 5, 3) axis -1");
    add_output(b, nncc_batchnorm(img, .axis = 1), "BatchNormalization (4, 5, 3) axis 1");
    add_output(b, nncc_batchnorm(a334, .axis = 1, .no_scale = true),
               "BatchNormalization (3, 3, 4) axis 1 no_scale");
    add_output(b, nncc_batchnorm(a334, .no_center = true),
               "BatchNormalization (3, 3, 4) axis -1 no_center");
    add_output(b, nncc_batchnorm(a334, .axis = 2), "BatchNormalization (3, 3, 4) axis 2");
    add_output(b, nncc_batchnorm(a37, .axis = 1), "BatchNormalization (3, 7) axis 1");
    nncc_tensor *c = OK(nncc_conv2d(img, .filters = 4, .kernel_size = {3, 3}, .padding = NNCC_SAME));
    c = OK(nncc_batchnorm(c));
    add_output(b, nncc_activation(c, .activation = NNCC_RELU), "Conv2D, BatchNormalization, relu");
    return make_model(b, "codegen_merge");
}

static void test_shapes_merges_batchnorm(void **state)
{
    (void)state;
    struct branches *b = branches_new(31);
    nncc_model *m = build_merge_model(b);
    randomize_weights(m, 32);
    check_model(m, b, 33);
    nncc_model_free(m);
    free(b);
}

/* ---- Model 4: a deep chain ---------------------------------------------- */

static nncc_model *build_deep_model(struct branches *b)
{
    uint64_t s = 404;
    nncc_tensor *x = add_input(b, NNCC_SHAPE(17));
    nncc_tensor *h = x;
    for (int i = 0; i < 12; i++) {
        int units = odd_units[irand(&s, 1, 4)]; /* width 1 would starve the chain */
        enum nncc_activation act = (i * 5) % NNCC_ACTIVATION_COUNT;
        if (act == NNCC_SOFTMAX || act == NNCC_RELU)
            act = NNCC_TANH; /* keep the signal alive through twelve layers */
        h = OK(nncc_dense(h, .units = units, .activation = act, .no_bias = i % 4 == 3));
        if (i % 3 == 2) /* intermediate outputs, also read by later layers */
            add_output(b, h, "deep chain: Dense %d of 12 (units %d, %s)", i + 1, units,
                       nncc_activation_name(act));
    }
    add_output(b, nncc_dense(h, .units = 7, .activation = NNCC_SOFTMAX),
               "deep chain: softmax head");
    return make_model(b, "codegen_deep");
}

static void test_deep_chain(void **state)
{
    (void)state;
    struct branches *b = branches_new(41);
    nncc_model *m = build_deep_model(b);
    randomize_weights(m, 42);
    check_model(m, b, 43);
    nncc_model_free(m);
    free(b);
}

/* ---- The emitted source compiles as ISO C11, warning-free ------------------ */

static void rm_rf(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (d) {
            struct dirent *e;
            while ((e = readdir(d)) != NULL) {
                if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                    continue;
                char child[1024];
                snprintf(child, sizeof child, "%s/%s", path, e->d_name);
                rm_rf(child);
            }
            closedir(d);
        }
        rmdir(path);
    } else {
        unlink(path);
    }
}

static void make_tmpdir(char *dir, size_t size)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, size, "%s/nncc-test-codegen-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(dir))
        fail_msg("mkdtemp %s: %s", dir, strerror(errno));
}

/* Runs argv with stdout and stderr into `log`; the exit status, 127 when
 * the program could not be started, -1 on a signal. */
static int run_logged(char *const argv[], const char *log)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int nul = open("/dev/null", O_RDONLY);
        if (fd < 0 || nul < 0)
            _exit(126);
        dup2(nul, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        execvp(argv[0], argv);
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static bool have_compiler(const char *cc, const char *dir)
{
    char log[600];
    snprintf(log, sizeof log, "%s/probe.log", dir);
    char *argv[] = {(char *)cc, "--version", NULL};
    return run_logged(argv, log) == 0;
}

static void print_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char line[512];
    int n = 0;
    while (fgets(line, sizeof line, f) && n++ < 60)
        print_error("    %s", line);
    fclose(f);
}

/* Writes src to DIR/TAG.c and compiles it with `cc -std=c11 -Wall -Wextra
 * -Werror -c` (and -fopenmp when asked); fails with the diagnostics. */
static void compile_ok(const char *cc, const char *dir, const char *tag, const char *src,
                       bool openmp, bool optimize)
{
    char c_path[600], o_path[600], log[600];
    snprintf(c_path, sizeof c_path, "%s/%s.c", dir, tag);
    snprintf(o_path, sizeof o_path, "%s/%s-%s%s.o", dir, tag, cc, openmp ? "-omp" : "");
    snprintf(log, sizeof log, "%s/%s-%s%s.log", dir, tag, cc, openmp ? "-omp" : "");
    FILE *f = fopen(c_path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(src, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
    char *argv[16];
    int argc = 0;
    argv[argc++] = (char *)cc;
    argv[argc++] = "-std=c11";
    argv[argc++] = "-Wall";
    argv[argc++] = "-Wextra";
    argv[argc++] = "-Werror";
    if (optimize) /* some warnings (-Wmaybe-uninitialized…) need the optimizer */
        argv[argc++] = "-O2";
    if (openmp)
        argv[argc++] = "-fopenmp";
    argv[argc++] = "-c";
    argv[argc++] = c_path;
    argv[argc++] = "-o";
    argv[argc++] = o_path;
    argv[argc] = NULL;
    int rc = run_logged(argv, log);
    if (rc != 0) {
        print_error("%s%s on %s exited with %d:\n", cc, openmp ? " -fopenmp" : "", c_path, rc);
        print_file(log);
        fail_msg("the generated source of %s does not compile cleanly with %s%s", tag, cc,
                 openmp ? " -fopenmp" : "");
    }
    struct stat st;
    assert_int_equal(stat(o_path, &st), 0);
    assert_true(st.st_size > 0);
    assert_int_equal(stat(log, &st), 0);
    if (st.st_size != 0) { /* not even a note */
        print_file(log);
        fail_msg("%s%s printed diagnostics on the generated source of %s", cc,
                 openmp ? " -fopenmp" : "", tag);
    }
}

/* Compiles a model's emitted source with every available compiler, with and
 * without OpenMP (-O2 too when asked: slow on big sources); returns how many
 * compilers were found. */
static int compile_everywhere(nncc_model *m, const char *dir, const char *tag, bool optimize)
{
    char *src = nncc_model_emit_c(m);
    if (!src)
        fail_msg("emit_c %s: %s", tag, nncc_last_error());
    static const char *const ccs[] = {"cc", "clang"};
    int found = 0;
    for (int i = 0; i < 2; i++) {
        if (!have_compiler(ccs[i], dir)) {
            print_message("[ note     ] %s not found: not compiling %s with it\n", ccs[i], tag);
            continue;
        }
        found++;
        compile_ok(ccs[i], dir, tag, src, false, optimize);
        compile_ok(ccs[i], dir, tag, src, true, optimize);
    }
    free(src);
    return found;
}

static void test_emitted_source_compiles(void **state)
{
    (void)state;
    char dir[512];
    make_tmpdir(dir, sizeof dir);
    nncc_model *(*builders[])(struct branches *) = {build_dense_model, build_spatial_model,
                                                    build_merge_model, build_deep_model};
    static const char *const tags[] = {"dense", "spatial", "merge", "deep"};
    int found = 0;
    for (int i = 0; i < 4; i++) {
        struct branches *b = branches_new(50 + (uint64_t)i);
        nncc_model *m = builders[i](b);
        found = compile_everywhere(m, dir, tags[i], false);
        nncc_model_free(m);
        free(b);
    }
    rm_rf(dir);
    if (found < 2)
        skip(); /* a compiler is missing: what ran passed, the rest is untested */
}

/* Names that try to escape the comments they are printed in. */
#define EVIL "evil*/\n#include \"x\" \xc3\xa9"

static void test_hostile_names(void **state)
{
    (void)state;
    nncc_graph *g = nncc_graph_new();
    assert_non_null(g);
    nncc_tensor *x = nncc_input(g, NNCC_SHAPE(6, 5, 3), .name = EVIL " input");
    nncc_tensor *v = nncc_input(g, NNCC_SHAPE(4), .name = EVIL " input /* nested \\");
    assert_non_null(x);
    assert_non_null(v);
    /* One layer of every kind, each with a hostile name. */
    nncc_tensor *c = nncc_conv2d(x, .filters = 3, .kernel_size = {3, 3}, .padding = NNCC_SAME,
                                 .name = EVIL " conv */ int evil; /*");
    c = nncc_batchnorm(c, .name = EVIL " bn ?\?/");
    c = nncc_activation(c, .activation = NNCC_GELU, .name = EVIL " act\r\n");
    nncc_tensor *mp = nncc_maxpool2d(c, .name = EVIL " max\t");
    nncc_tensor *ap = nncc_avgpool2d(c, .padding = NNCC_SAME, .name = EVIL " avg\\");
    nncc_tensor *gp = nncc_global_avgpool2d(c, .keepdims = true, .name = EVIL " gap");
    nncc_tensor *ad = nncc_add(T(ap, gp), 2, .name = EVIL " add");
    nncc_tensor *f1 = nncc_flatten(mp, .name = EVIL " flat1");
    nncc_tensor *f2 = nncc_flatten(ad, .name = EVIL " flat2");
    nncc_tensor *cc = nncc_concatenate(T(f1, f2, v), 3, .name = EVIL " cat");
    nncc_tensor *dr = nncc_dropout(cc, .rate = 0.5f, .name = EVIL " drop");
    nncc_tensor *de = nncc_dense(dr, .units = 6, .activation = NNCC_SELU, .name = EVIL " dense");
    nncc_tensor *rs = nncc_reshape(de, .target_shape = NNCC_SHAPE(2, -1), .name = EVIL " reshape");
    nncc_tensor *sm = nncc_activation(rs, .activation = NNCC_SOFTMAX, .name = EVIL " softmax");
    if (!sm)
        fail_msg("building the model: %s", nncc_last_error());
    nncc_model *m = nncc_model_new_n(T(x, v), 2, T(sm, rs), 2, .name = EVIL " model");
    if (!m)
        fail_msg("model: %s", nncc_last_error());

    char *src = nncc_model_emit_c(m);
    if (!src)
        fail_msg("emit_c: %s", nncc_last_error());
    /* (The generated header comment itself is followed by "#include <".) */
    assert_null(strstr(src, "*/\n#include \""));
    assert_null(strstr(src, "\n#include \"x\""));
    assert_null(strstr(src, "#include \"x\""));
    assert_null(strstr(src, "evil*/"));
    assert_null(strstr(src, "*/ int evil"));
    assert_null(strstr(src, "/* nested"));
    assert_null(strstr(src, "\xc3\xa9"));
    assert_null(strstr(src, "?\?/"));
    assert_null(strstr(src, "\r"));
    assert_null(strstr(src, "\t"));
    /* The only #include lines are the generated ones. */
    for (const char *p = src; (p = strstr(p, "#include")) != NULL; p++) {
        assert_true(p == src || p[-1] == '\n');
        assert_true(strncmp(p, "#include <", 10) == 0);
    }
    /* No byte outside printable ASCII and newlines. */
    for (const unsigned char *p = (const unsigned char *)src; *p; p++)
        if (*p != '\n' && (*p < 0x20 || *p > 0x7e))
            fail_msg("byte 0x%02x at offset %ld of the generated source", *p,
                     (long)((const char *)p - src));
    free(src);

    char dir[512];
    make_tmpdir(dir, sizeof dir);
    int found = compile_everywhere(m, dir, "hostile", true);
    rm_rf(dir);
    nncc_model_free(m);
    if (found < 2)
        skip();
}

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

int main(void)
{
#ifdef UNDER_ASAN
    /* Under ASan the JIT'd code is compiled without OpenMP (unless
     * NNCC_JIT_FLAGS says otherwise): LeakSanitizer (GCC 12's libasan) dies
     * at exit with "Tracer caught signal 11" while walking the dynamic TLS
     * of the worker threads that libomp, loaded by a dlopen'ed .so, leaves
     * running; a dlopen'ed two-line OpenMP library reproduces it without
     * nncc.  The generated code is not instrumented anyway, and the normal
     * build runs it with OpenMP. */
    setenv("NNCC_JIT_FLAGS", "-O2 -march=native", 0);
#endif
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dense_and_activations),
        cmocka_unit_test(test_conv_and_pooling),
        cmocka_unit_test(test_shapes_merges_batchnorm),
        cmocka_unit_test(test_deep_chain),
        cmocka_unit_test(test_emitted_source_compiles),
        cmocka_unit_test(test_hostile_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
