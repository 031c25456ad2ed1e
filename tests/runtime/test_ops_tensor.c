/*
 * test_ops_tensor: the tensor ops (transpose, strided_slice, pad, reduce,
 * gather; ir/ops.c, runtime/oracle/interp_tensor.c, codegen/tensor.c) and
 * their gradients (passes/autodiff.c), built directly as IR (no layer makes
 * them; the ONNX importer will).
 *
 * 1. hand: small batched and unbatched cases whose outputs are worked out
 *    by hand next to each expected value (negative steps, end −1, end
 *    INT64_MAX, negative and duplicate gather indices, an embedding,
 *    keepdims, all-axes reductions; gradient kernels: max ties split in
 *    reduce_grad, the embedding's gradient with duplicate and out-of-range
 *    indices, a strided slice's with negative steps), through the
 *    reference interpreter and through the JIT-compiled code, both
 *    compared with the hand values.  An out-of-range gather index gives
 *    NaN in the oracle and 0 in generated code.
 * 2. rules: what the shape rules refuse (the batch axis moved, sliced,
 *    padded, reduced or gathered along; malformed permutations, slices,
 *    masks), each with its message.
 * 3. random: one model with many branches on odd shapes, ranks 2 to 6,
 *    batched and unbatched (ops on parameters), generated against the
 *    oracle for n = 1, 3 and 7: data movement must be exact, reductions
 *    within 5e-5 relative (float sums and products of up to 315 values
 *    in [0.5, 1.5), the oracle's in double).
 * 4. grad: one model whose single output concatenates every op's result
 *    (batched ones after a Dense-like matmul with a trainable kernel,
 *    unbatched ones on trainable parameters feeding matmuls), MSE loss;
 *    the gradients-only training step (nncc_autodiff) in double against
 *    central finite differences of the loss (h = 2^-14 on weights that
 *    are multiples of 2^-10, so w ± h is exact; |g − fd| ≤ 1e-6·max + 1e-9,
 *    as tests/passes/test_grad.c argues), then the generated step against
 *    the oracle's (1e-4 relative, floor 1e-4 × RMS).  Covered: every
 *    gradient path, max ties that persist under perturbation (the max of
 *    a tensor concatenated with itself), duplicate gather indices (batched
 *    data, the embedding's batch sum, unbatched data).
 * Every generated source (3 and 4, and 1) must also compile without a
 * diagnostic as ISO C11 under cc and clang, with and without OpenMP.
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
#include <unistd.h>

#include "passes/passes.h"
#include "runtime/jit/exec.h"
#include "runtime/oracle/interp.h"

#define NONE NNCC_NONE
#define ALL INT64_MAX
#define SH(...)                                                              \
    ((struct nncc_shape){.rank = (int)(sizeof((int64_t[]){__VA_ARGS__}) /   \
                                       sizeof(int64_t)),                     \
                         .dim = {__VA_ARGS__}})
#define I64(...) ((const int64_t[]){__VA_ARGS__})
#define INTS(...) ((const int[]){__VA_ARGS__})
#define FL(...) ((const float[]){__VA_ARGS__})
#define COUNT(a) ((int64_t)(sizeof(a) / sizeof((a)[0])))

#define OK(expr)                                                             \
    do {                                                                     \
        enum nncc_status st_ = (expr);                                       \
        if (st_ != NNCC_OK)                                                  \
            fail_msg("%s failed (%s): %s", #expr, nncc_status_name(st_),     \
                     nncc_last_error());                                     \
    } while (0)

#define NN(expr) nn_((expr), #expr, __LINE__)
static void *nn_(void *p, const char *what, int line)
{
    if (!p)
        fail_msg("line %d: %s is NULL: %s", line, what, nncc_last_error());
    return p;
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    assert_non_null(p);
    return p;
}

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

/* A multiple of 2^-10: exact in float, and so is w ± 2^-14. */
static float quant(double v) { return (float)ldexp(nearbyint(ldexp(v, 10)), -10); }

/* ---- Building IR -------------------------------------------------------- */

static nncc_tensor *node(nncc_graph *g, enum ir_op op, nncc_tensor *const *in, int n_in,
                         const struct ir_attrs *a)
{
    char name[32];
    snprintf(name, sizeof name, "t%d", g->n_nodes);
    return ir_add_node(g, op, in, n_in, a, NULL, name);
}

static nncc_tensor *input(nncc_graph *g, struct nncc_shape s)
{
    char name[32];
    snprintf(name, sizeof name, "in%d", g->n_nodes);
    return NN(ir_add_input(g, s, name, NULL));
}

/* A parameter holding v (count values), or random multiples of 2^-10 in
 * [−1, 1) when v is NULL. */
static nncc_tensor *param(nncc_graph *g, struct nncc_shape s, const float *v, bool trainable,
                          uint64_t *seed)
{
    char name[32];
    snprintf(name, sizeof name, "p%d", g->n_nodes);
    nncc_tensor *t = NN(ir_add_param(g, s, name, trainable, NNCC_ZEROS, NULL));
    int64_t n = ir_shape_numel(s, 0);
    for (int64_t i = 0; i < n; i++)
        t->data[i] = v ? v[i] : quant(urand(seed, -1, 1));
    return t;
}

static nncc_tensor *transpose(nncc_graph *g, nncc_tensor *x, const int *perm)
{
    struct ir_attrs a = {0};
    for (int i = 0; i < x->shape.rank; i++)
        a.perm[i] = perm[i];
    return node(g, IR_TRANSPOSE, &x, 1, &a);
}

static nncc_tensor *sslice(nncc_graph *g, nncc_tensor *x, const int64_t *b, const int64_t *e,
                           const int64_t *s)
{
    struct ir_attrs a = {0};
    for (int i = 0; i < x->shape.rank; i++) {
        a.begin[i] = b[i];
        a.end[i] = e[i];
        a.step[i] = s[i];
    }
    return node(g, IR_STRIDED_SLICE, &x, 1, &a);
}

static nncc_tensor *pad(nncc_graph *g, nncc_tensor *x, const int64_t *pb, const int64_t *pe,
                        float v)
{
    struct ir_attrs a = {.pad_value = v};
    for (int i = 0; i < x->shape.rank; i++) {
        a.pad_begin[i] = pb[i];
        a.pad_end[i] = pe[i];
    }
    return node(g, IR_PAD, &x, 1, &a);
}

static nncc_tensor *reduce(nncc_graph *g, nncc_tensor *x, int kind, uint32_t axes, bool keep)
{
    struct ir_attrs a = {.reduce = kind, .reduce_axes = axes, .keepdims = keep};
    return node(g, IR_REDUCE, &x, 1, &a);
}

static nncc_tensor *gather(nncc_graph *g, nncc_tensor *x, nncc_tensor *idx, int axis)
{
    struct ir_attrs a = {.axis = axis};
    nncc_tensor *in[2] = {x, idx};
    return node(g, IR_GATHER, in, 2, &a);
}

/* x flattened to (N, k) (or (1, k) per... batched only). */
static nncc_tensor *flat(nncc_graph *g, nncc_tensor *x)
{
    struct ir_attrs a = {.target = {.rank = 1, .dim = {-1}}};
    return NN(node(g, IR_RESHAPE, &x, 1, &a));
}

/* ---- Running a program both ways ------------------------------------------ */

static int64_t count(const nncc_tensor *t, int batch)
{
    return t->batched ? batch * ir_shape_numel(t->shape, 1) : ir_shape_numel(t->shape, 0);
}

static float **alloc_outs(const struct ir_program *p, int batch)
{
    float **o = xcalloc((size_t)p->n_outputs, sizeof *o);
    for (int k = 0; k < p->n_outputs; k++)
        o[k] = xcalloc((size_t)count(p->outputs[k], batch), sizeof *o[k]);
    return o;
}

static void free_outs(void *outs, int n)
{
    void **o = outs;
    for (int k = 0; k < n; k++)
        free(o[k]);
    free(o);
}

/* The entry's generated source must compile without a diagnostic as ISO
 * C11 (-Wall -Wextra -pedantic) under cc and clang, with and without
 * OpenMP (compilers not installed are skipped). */
static void check_clean(struct cg_entry *e, const char *tag)
{
    char *src = NULL;
    size_t len = 0;
    OK(nncc_codegen(e, 1, tag, &src, &len));
    char dir[] = "/tmp/nncc_tensor_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128], log[128], cmd[512];
    snprintf(path, sizeof path, "%s/%s.c", dir, tag);
    snprintf(log, sizeof log, "%s/log", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_true(fputs(src, f) >= 0);
    assert_int_equal(fclose(f), 0);
    free(src);
    static const char *const ccs[] = {"cc", "clang"};
    for (int i = 0; i < 2; i++)
        for (int omp = 0; omp < 2; omp++) {
            snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", ccs[i]);
            if (system(cmd) != 0)
                continue;
            snprintf(cmd, sizeof cmd,
                     "%s -std=c11 -Wall -Wextra -pedantic -Werror -fsyntax-only %s %s >%s 2>&1",
                     ccs[i], omp ? "-fopenmp" : "", path, log);
            int rc = system(cmd);
            FILE *lf = fopen(log, "r");
            assert_non_null(lf);
            char line[400];
            bool any = false;
            while (fgets(line, sizeof line, lf)) {
                print_error("%s", line);
                any = true;
            }
            fclose(lf);
            if (rc != 0 || any)
                fail_msg("%s%s: the generated source of %s is not clean", ccs[i],
                         omp ? " -fopenmp" : "", tag);
        }
    remove(path);
    remove(log);
    rmdir(dir);
}

/* The inference forward, compiled. */
static struct nncc_exec *build_forward(const struct ir_program *p, const char *name)
{
    struct ir_plan plans[2];
    struct nncc_lower_opts lo = {.model_name = name};
    enum nncc_status st = nncc_lower(p, &lo, plans);
    if (st) {
        ir_plan_free(&plans[0]);
        fail_msg("%s: lowering: %s", name, nncc_last_error());
    }
    struct cg_entry e = {.plan = &plans[0], .name = "nncc_forward", .prefix = ""};
    check_clean(&e, name);
    struct nncc_exec *ex = nncc_exec_build(&e, 1, name);
    ir_plan_free(&plans[0]);
    if (!ex)
        fail_msg("%s: build: %s", name, nncc_last_error());
    return ex;
}

static void run_forward(struct nncc_exec *ex, int batch, const float *const *in, float **out)
{
    struct nncc_exec_entry *e = &ex->entry[0];
    float *ws = xcalloc(nncc_exec_ws_floats(e, batch) + 1, sizeof *ws);
    e->forward(batch, (const float *const *)e->params, in, out, ws);
    free(ws);
}

/* Counts values of got outside |got − want| ≤ abs + rel·|want|; NaN
 * matches NaN only when nan_ok. */
static int mismatches(const char *what, const float *got, const double *want, int64_t n,
                      double abs_tol, double rel_tol)
{
    int bad = 0;
    for (int64_t i = 0; i < n; i++) {
        double g = got[i];
        bool ok = isnan(want[i]) ? isnan(g) : fabs(g - want[i]) <= abs_tol + rel_tol * fabs(want[i]);
        if (!ok) {
            if (bad < 8)
                print_error("%s [%lld]: got %.9g, expected %.9g\n", what, (long long)i, g,
                            want[i]);
            bad++;
        }
    }
    return bad;
}

/* ---- 1. Hand-worked values ------------------------------------------------ */

struct hand {
    nncc_tensor *out;
    const char *what;
    const double *want;   /* batch 2 (or the whole value when unbatched) */
    const double *want_jit; /* when generated code differs (out-of-range gather) */
    int64_t n;
};

#define D(...) ((const double[]){__VA_ARGS__})
#define HAND(o, w, ...) \
    {.out = (o), .what = (w), .want = D(__VA_ARGS__), .n = COUNT(D(__VA_ARGS__))}

static void test_hand(void **state)
{
    (void)state;
    nncc_graph *g = NN(nncc_graph_new());
    /* x[b][i][j] = 6b + 3i + j, (2, 2, 3) */
    nncc_tensor *x = input(g, SH(NONE, 2, 3));
    /* embedding indices (2, 3): {3, −4, 1}, {0, 0, 7} (7 is out of range for 4 rows) */
    nncc_tensor *ix = input(g, SH(NONE, 3));
    /* reduce_grad inputs: dy (N, 1) and x (N, 4) */
    nncc_tensor *rdy = input(g, SH(NONE, 1)), *rx = input(g, SH(NONE, 4));
    uint64_t seed = 1;
    nncc_tensor *P = param(g, SH(2, 3), FL(1, 2, 3, 4, 5, 6), false, &seed);
    nncc_tensor *E = param(g, SH(4, 2), FL(10, 11, 20, 21, 30, 31, 40, 41), false, &seed);
    nncc_tensor *gi = param(g, SH(2), FL(-1, 0), false, &seed);
    nncc_tensor *pi = param(g, SH(2), FL(1, -2), false, &seed);
    /* gradients by hand: dy of the embedding (N, 3, 2), of the slice (N, 2, 2) */
    nncc_tensor *dye = input(g, SH(NONE, 3, 2)), *dys = input(g, SH(NONE, 2, 2));
    nncc_tensor *rmax = NN(reduce(g, rx, IR_REDUCE_MAX, 2, true));
    struct ir_attrs ra = rmax->producer->a;
    nncc_tensor *rg_in[3] = {rdy, rx, rmax};
    struct hand h[] = {
        /* y[b][j][i] = x[b][i][j] */
        HAND(NN(transpose(g, x, INTS(0, 2, 1))), "transpose (0,2,1)", 0, 3, 1, 4, 2, 5, 6, 9, 7,
             10, 8, 11),
        /* rows 1, 0 (end −1: down to 0) and columns 2, 0: x[b][1−i][2−2j] */
        HAND(NN(sslice(g, x, I64(0, 1, 2), I64(ALL, -1, -1), I64(1, -1, -2))),
             "slice negative steps", 5, 3, 2, 0, 11, 9, 8, 6),
        /* columns 0, 2 (end INT64_MAX: to the end) */
        HAND(NN(sslice(g, x, I64(0, 0, 0), I64(ALL, 2, ALL), I64(1, 1, 2))), "slice step 2", 0, 2,
             3, 5, 6, 8, 9, 11),
        /* row 1 only, columns 1..2: count ⌈(3−1)/1⌉ = 2 */
        HAND(NN(sslice(g, x, I64(0, 1, 1), I64(ALL, 2, 3), I64(1, 1, 1))), "slice unit", 4, 5, 10,
             11),
        /* one row of −1 on top, one column of −1 on the right */
        HAND(NN(pad(g, x, I64(0, 1, 0), I64(0, 0, 1), -1)), "pad", -1, -1, -1, -1, 0, 1, 2, -1, 3,
             4, 5, -1, -1, -1, -1, -1, 6, 7, 8, -1, 9, 10, 11, -1),
        /* 0+1+2, 3+4+5; 6+7+8, 9+10+11 */
        HAND(NN(reduce(g, x, IR_REDUCE_SUM, 4, false)), "sum axis 2", 3, 12, 21, 30),
        /* (0+3)/2 … */
        HAND(NN(reduce(g, x, IR_REDUCE_MEAN, 2, true)), "mean axis 1 keepdims", 1.5, 2.5, 3.5, 7.5,
             8.5, 9.5),
        HAND(NN(reduce(g, x, IR_REDUCE_MAX, 6, false)), "max axes 1,2", 5, 11),
        HAND(NN(reduce(g, x, IR_REDUCE_MIN, 6, true)), "min axes 1,2 keepdims", 0, 6),
        /* 0·1·2, 3·4·5; 6·7·8, 9·10·11 */
        HAND(NN(reduce(g, x, IR_REDUCE_PROD, 4, false)), "prod axis 2", 0, 60, 336, 990),
        /* indices {−1 → 2, 0} on axis 2: x[b][i][2], x[b][i][0] */
        HAND(NN(gather(g, x, gi, -1)), "gather axis -1", 2, 0, 5, 3, 8, 6, 11, 9),
        /* rows 3, −4 → 0, 1; 0, 0, 7 (out of range: NaN in the oracle) */
        {.out = NN(gather(g, E, ix, 0)), .what = "embedding",
         .want = D(40, 41, 10, 11, 20, 21, 10, 11, 10, 11, NAN, NAN),
         .want_jit = D(40, 41, 10, 11, 20, 21, 10, 11, 10, 11, 0, 0), .n = 12},
        /* max of {1, 3, 3, 2} is tied: dy 1 split in halves (TensorFlow);
         * {5, 4, 4, 5} likewise, dy 2 → 1, 1 */
        HAND(NN(node(g, IR_REDUCE_GRAD, rg_in, 3, &ra)), "reduce_grad max ties", 0, 0.5, 0.5, 0,
             1, 0, 0, 1),
        /* dy = 1 … 12 rows of 2 at rows 3, 0, 1; 0, 0, (7: skipped) of E:
         * row 0 = (3, 4) + (7, 8) + (9, 10), row 1 = (5, 6), row 3 = (1, 2) */
        HAND(NN(node(g, IR_GATHER_GRAD_PARAM, ((nncc_tensor *[]){dye, ix}), 2,
                      &(struct ir_attrs){.axis = 0, .like = E->shape})),
             "embedding gradient", 19, 22, 5, 6, 0, 0, 1, 2),
        /* dy[i'][j'] back to x[1 − i'][2 − 2j']: dy = 1 … 4, 5 … 8 */
        HAND(NN(node(g, IR_STRIDED_SLICE_GRAD, &dys, 1,
                      &(struct ir_attrs){.like = x->shape,
                                         .begin = {0, 1, 2},
                                         .end = {ALL, -1, -1},
                                         .step = {1, -1, -2}})),
             "slice gradient", 4, 0, 3, 2, 0, 1, 8, 0, 7, 6, 0, 5),
        /* unbatched: P = ((1, 2, 3), (4, 5, 6)) */
        HAND(NN(transpose(g, P, INTS(1, 0))), "transpose param", 1, 4, 2, 5, 3, 6),
        HAND(NN(sslice(g, P, I64(1, 0), I64(-1, ALL), I64(-1, 1))), "slice param axis 0", 4, 5, 6,
             1, 2, 3),
        HAND(NN(pad(g, P, I64(1, 0), I64(0, 1), 0)), "pad param axis 0", 0, 0, 0, 0, 1, 2, 3, 0,
             4, 5, 6, 0),
        HAND(NN(reduce(g, P, IR_REDUCE_SUM, 1, false)), "sum param axis 0", 5, 7, 9),
        HAND(NN(reduce(g, P, IR_REDUCE_SUM, 3, false)), "sum param all", 21),
        HAND(NN(reduce(g, P, IR_REDUCE_MAX, 3, true)), "max param all keepdims", 6),
        /* rows 1, −2 → 0 */
        HAND(NN(gather(g, P, pi, 0)), "gather param", 4, 5, 6, 1, 2, 3),
    };
    int nh = (int)COUNT(h);
    nncc_tensor *outs[32];
    for (int k = 0; k < nh; k++)
        outs[k] = h[k].out;
    assert_int_equal(outs[0]->shape.rank, 3);
    assert_true(h[6].out->shape.rank == 3 && h[6].out->shape.dim[1] == 1);
    assert_true(h[7].out->shape.rank == 1);
    assert_true(h[19].out->shape.rank == 1 && h[19].out->shape.dim[0] == 1);
    assert_true(h[20].out->shape.rank == 2);
    assert_true(!h[15].out->batched && h[11].out->batched && h[10].out->batched);
    assert_true(!h[13].out->batched && h[14].out->batched);
    nncc_tensor *ins[6] = {x, ix, rdy, rx, dye, dys};
    struct ir_program p;
    OK(ir_program_init(&p, g, ins, 6, outs, nh));
    const float xv[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
    const float iv[] = {3, -4, 1, 0, 0, 7};
    const float dyv[] = {1, 2};
    const float rxv[] = {1, 3, 3, 2, 5, 4, 4, 5};
    const float dyev[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    const float dysv[] = {1, 2, 3, 4, 5, 6, 7, 8};
    const float *const inv[6] = {xv, iv, dyv, rxv, dyev, dysv};
    float **ref = alloc_outs(&p, 2), **jit = alloc_outs(&p, 2);
    OK(nncc_interp_run(&p, 2, inv, ref));
    struct nncc_exec *ex = build_forward(&p, "hand");
    run_forward(ex, 2, inv, jit);
    int bad = 0;
    for (int k = 0; k < nh; k++) {
        assert_int_equal(count(h[k].out, 2), h[k].n);
        char what[200];
        snprintf(what, sizeof what, "%s (reference)", h[k].what);
        bad += mismatches(what, ref[k], h[k].want, h[k].n, 1e-6, 0x1p-23);
        snprintf(what, sizeof what, "%s (generated)", h[k].what);
        bad += mismatches(what, jit[k], h[k].want_jit ? h[k].want_jit : h[k].want, h[k].n, 1e-6,
                          1e-6);
    }
    nncc_exec_free(ex);
    free_outs(ref, nh);
    free_outs(jit, nh);
    ir_program_free(&p);
    nncc_graph_free(g);
    assert_int_equal(bad, 0);
}

/* ---- 2. Shape rules --------------------------------------------------------- */

static void expect_fail(nncc_tensor *t, const char *needle, int line)
{
    if (t)
        fail_msg("line %d: the node was accepted", line);
    if (!strstr(nncc_last_error(), needle))
        fail_msg("line %d: message \"%s\" lacks \"%s\"", line, nncc_last_error(), needle);
    assert_int_equal(nncc_last_status(), NNCC_ERR_SHAPE);
}
#define REFUSED(t, needle) expect_fail((t), (needle), __LINE__)

static void test_rules(void **state)
{
    (void)state;
    nncc_graph *g = NN(nncc_graph_new());
    uint64_t seed = 3;
    nncc_tensor *x = input(g, SH(NONE, 4, 5));
    nncc_tensor *P = param(g, SH(4, 5), NULL, false, &seed);
    nncc_tensor *ib = input(g, SH(NONE, 2));
    nncc_tensor *ip = param(g, SH(2), FL(0, 1), false, &seed);
    REFUSED(transpose(g, x, INTS(1, 0, 2)), "batch axis");
    REFUSED(transpose(g, x, INTS(0, 1, 1)), "once");
    REFUSED(transpose(g, x, INTS(0, 1, 3)), "once");
    NN(transpose(g, P, INTS(1, 0)));
    REFUSED(sslice(g, x, I64(0, 0, 0), I64(4, 4, 5), I64(1, 1, 1)), "batch axis");
    REFUSED(sslice(g, x, I64(1, 0, 0), I64(ALL, 4, 5), I64(1, 1, 1)), "batch axis");
    REFUSED(sslice(g, x, I64(0, 0, 0), I64(ALL, 4, 5), I64(1, 0, 1)), "step 0");
    REFUSED(sslice(g, x, I64(0, 2, 0), I64(ALL, 2, 5), I64(1, 1, 1)), "selects nothing");
    REFUSED(sslice(g, x, I64(0, 0, 0), I64(ALL, 6, 5), I64(1, 1, 1)), "positive step");
    REFUSED(sslice(g, x, I64(0, 4, 0), I64(ALL, -1, 5), I64(1, -1, 1)), "negative step");
    REFUSED(sslice(g, x, I64(0, 2, 0), I64(ALL, -2, 5), I64(1, -1, 1)), "negative step");
    REFUSED(sslice(g, x, I64(0, 1, 0), I64(ALL, 2, 5), I64(1, -1, 1)), "negative step");
    NN(sslice(g, P, I64(3, 0), I64(-1, ALL), I64(-3, 2)));
    REFUSED(pad(g, x, I64(1, 0, 0), I64(0, 0, 0), 0), "batch axis");
    REFUSED(pad(g, x, I64(0, -1, 0), I64(0, 0, 0), 0), ">= 0");
    NN(pad(g, P, I64(1, 0), I64(2, 0), 0));
    REFUSED(reduce(g, x, IR_REDUCE_SUM, 1, false), "batch axis");
    REFUSED(reduce(g, x, IR_REDUCE_SUM, 0, false), "mask");
    REFUSED(reduce(g, x, IR_REDUCE_SUM, 8, false), "mask");
    NN(reduce(g, P, IR_REDUCE_SUM, 1, false));
    REFUSED(gather(g, x, ip, 0), "batch axis");
    REFUSED(gather(g, x, ib, 1), "both");
    REFUSED(gather(g, P, ib, 1), "axis 0");
    REFUSED(gather(g, P, ip, 2), "out of range");
    NN(gather(g, P, ib, 0));
    nncc_tensor *gx = NN(gather(g, x, ip, -1));
    assert_int_equal(gx->producer->a.axis, 2); /* normalised */

    /* The attributes as nncc graph --ir prints them. */
    nncc_tensor *outs[5] = {
        NN(transpose(g, x, INTS(0, 2, 1))),
        NN(sslice(g, x, I64(0, 3, 0), I64(ALL, -1, 5), I64(1, -2, 2))),
        NN(pad(g, x, I64(0, 1, 0), I64(0, 0, 2), 0.5f)),
        NN(reduce(g, x, IR_REDUCE_MEAN, 6, true)),
        gx,
    };
    struct ir_program p;
    OK(ir_program_init(&p, g, &x, 1, outs, 5));
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    ir_print(&p, f);
    fclose(f);
    static const char *const want[] = {"transpose[perm=0,2,1]", "strided_slice[0::1,3:-1:-2,0:5:2]",
                                       "pad[value=0.5 pads=0+0,1+0,0+2]",
                                       "reduce[mean axes=0x6 keepdims=1]", "gather[axis=2]"};
    for (int k = 0; k < 5; k++)
        if (!strstr(text, want[k]))
            fail_msg("ir_print lacks \"%s\":\n%s", want[k], text);
    free(text);
    ir_program_free(&p);

    /* Training through a product is refused, naming the op. */
    nncc_tensor *w = param(g, SH(5, 5), NULL, true, &seed);
    nncc_tensor *mm[2] = {x, w};
    nncc_tensor *y = NN(reduce(g, NN(node(g, IR_MATMUL, mm, 2, NULL)), IR_REDUCE_PROD, 4, true));
    OK(ir_program_init(&p, g, &x, 1, &y, 1));
    struct nncc_train_spec ts = {.loss = NNCC_MEAN_SQUARED_ERROR, .target_shape = y->shape,
                                 .params = &w, .n_params = 1, .gradients_only = true};
    struct ir_plan plans[2];
    struct nncc_lower_opts lo = {.model_name = "prod", .train = &ts};
    assert_int_not_equal(nncc_lower(&p, &lo, plans), NNCC_OK);
    assert_non_null(strstr(nncc_last_error(), "training through reduce prod is not supported"));
    ir_plan_free(&plans[0]);
    ir_plan_free(&plans[1]);
    ir_program_free(&p);
    nncc_graph_free(g);
}

/* ---- 3. Random data, generated against the oracle ---------------------------- */

static void test_random(void **state)
{
    (void)state;
    nncc_graph *g = NN(nncc_graph_new());
    uint64_t seed = 11;
    nncc_tensor *X4 = input(g, SH(NONE, 5, 7, 9));
    nncc_tensor *X6 = input(g, SH(NONE, 3, 1, 5, 4, 2));
    nncc_tensor *X2 = input(g, SH(NONE, 67, 45));
    nncc_tensor *IE = input(g, SH(NONE, 5)); /* integer indices in [−11, 11) */
    nncc_tensor *X1 = input(g, SH(NONE));
    nncc_tensor *P3 = param(g, SH(6, 5, 7), NULL, false, &seed);
    nncc_tensor *E = param(g, SH(11, 6), NULL, false, &seed);
    nncc_tensor *i4 = param(g, SH(4), FL(3, -1, 0, 3), false, &seed);
    nncc_tensor *i23 = param(g, SH(2, 3), FL(-7, 6, 0, 1, 1, -2), false, &seed);
    nncc_tensor *outs[96];
    const char *what[96];
    int no = 0;
#define OUT(t, w) (outs[no] = NN(t), what[no++] = (w))
    OUT(transpose(g, X4, INTS(0, 2, 3, 1)), "NCHW to NHWC");
    OUT(transpose(g, X4, INTS(0, 3, 1, 2)), "NHWC to NCHW");
    OUT(transpose(g, X4, INTS(0, 3, 2, 1)), "transpose 0321");
    OUT(transpose(g, X4, INTS(0, 2, 1, 3)), "transpose inner kept");
    OUT(transpose(g, X4, INTS(0, 1, 2, 3)), "transpose identity");
    OUT(transpose(g, X6, INTS(0, 5, 3, 1, 2, 4)), "transpose rank 6");
    OUT(transpose(g, X6, INTS(0, 3, 4, 5, 1, 2)), "transpose rank 6 merged");
    OUT(transpose(g, X2, INTS(0, 2, 1)), "transpose 67x45");
    OUT(transpose(g, P3, INTS(2, 0, 1)), "transpose param 201");
    OUT(transpose(g, P3, INTS(1, 2, 0)), "transpose param 120");
    OUT(transpose(g, P3, INTS(2, 1, 0)), "transpose param 210");
    OUT(sslice(g, X4, I64(0, 4, 1, 8), I64(ALL, -1, 7, -1), I64(1, -2, 3, -1)), "slice mixed");
    OUT(sslice(g, X4, I64(0, 1, 0, 2), I64(ALL, 4, ALL, 9), I64(1, 1, 2, 1)), "slice rows");
    OUT(sslice(g, X4, I64(0, 0, 6, 0), I64(ALL, 5, 0, 9), I64(1, 3, -4, 4)), "slice strides");
    OUT(sslice(g, X2, I64(0, 66, 3), I64(ALL, -1, 44), I64(1, -5, 7)), "slice 2-D");
    OUT(sslice(g, X6, I64(0, 2, 0, 4, 1, 1), I64(ALL, -1, 1, 0, 4, -1), I64(1, -1, 1, -2, 2, -1)),
        "slice rank 6");
    OUT(sslice(g, P3, I64(5, 1, 0), I64(-1, 5, ALL), I64(-2, 1, 3)), "slice param");
    /* one element per axis, with steps too large for step·stride */
    OUT(sslice(g, P3, I64(4, 3, 6), I64(5, -1, -1), I64(INT64_MAX, INT64_MIN, -INT64_MAX)),
        "slice huge steps");
    OUT(sslice(g, X1, I64(0), I64(ALL), I64(1)), "slice rank 1");
    OUT(pad(g, X1, I64(0), I64(0), 2), "pad rank 1");
    OUT(transpose(g, X1, INTS(0)), "transpose rank 1");
    OUT(pad(g, X4, I64(0, 1, 0, 2), I64(0, 0, 3, 1), 0.5f), "pad");
    OUT(pad(g, X2, I64(0, 0, 0), I64(0, 2, 0), -3), "pad rows");
    OUT(pad(g, X6, I64(0, 1, 1, 0, 0, 1), I64(0, 0, 1, 2, 0, 0), 0), "pad rank 6");
    OUT(pad(g, P3, I64(1, 2, 0), I64(2, 0, 1), 7), "pad param");
    static const int kinds[] = {IR_REDUCE_SUM, IR_REDUCE_MEAN, IR_REDUCE_MAX, IR_REDUCE_MIN,
                                IR_REDUCE_PROD};
    static const uint32_t masks[] = {1u << 1, 1u << 3, 3u << 1, 3u << 2, 5u << 1, 7u << 1};
    static const char *const kind_names[] = {"sum", "mean", "max", "min", "prod"};
    char names[64][48];
    int nn = 0;
    for (int k = 0; k < 5; k++)
        for (int m = 0; m < 6; m++) {
            snprintf(names[nn], sizeof names[0], "reduce %s 0x%x", kind_names[k], masks[m]);
            OUT(reduce(g, X4, kinds[k], masks[m], (m + k) & 1), names[nn]);
            nn++;
        }
    OUT(reduce(g, X6, IR_REDUCE_SUM, (1u << 2) | (1u << 4), false), "reduce rank 6");
    OUT(reduce(g, X6, IR_REDUCE_MAX, (1u << 1) | (1u << 5), true), "reduce max rank 6");
    OUT(reduce(g, P3, IR_REDUCE_SUM, 7, false), "reduce param all");
    OUT(reduce(g, P3, IR_REDUCE_MIN, 1, true), "reduce param axis 0");
    OUT(reduce(g, P3, IR_REDUCE_MEAN, 5, false), "reduce param axes 0,2");
    OUT(gather(g, X4, i4, 1), "gather axis 1");
    OUT(gather(g, X4, i23, 3), "gather axis 3");
    OUT(gather(g, X4, i4, 2), "gather axis 2");
    OUT(gather(g, E, IE, 0), "embedding");
    OUT(gather(g, P3, i4, 0), "gather param axis 0");
    OUT(gather(g, P3, i23, 2), "gather param axis 2");
#undef OUT
    nncc_tensor *ins[5] = {X4, X6, X2, IE, X1};
    struct ir_program p;
    OK(ir_program_init(&p, g, ins, 5, outs, no));
    struct nncc_exec *ex = build_forward(&p, "tensor_random");
    int bad = 0;
    static const int batches[] = {1, 3, 7};
    for (int bi = 0; bi < 3; bi++) {
        int n = batches[bi];
        float *inv[5];
        for (int k = 0; k < 5; k++) {
            int64_t c = count(ins[k], n);
            inv[k] = xcalloc((size_t)c, sizeof *inv[k]);
            for (int64_t i = 0; i < c; i++)
                inv[k][i] = k == 3 ? (float)(int)(rng_next(&seed) % 22) - 11
                                   : (float)urand(&seed, 0.5, 1.5);
        }
        float **ref = alloc_outs(&p, n), **jit = alloc_outs(&p, n);
        OK(nncc_interp_run(&p, n, (const float *const *)inv, ref));
        run_forward(ex, n, (const float *const *)inv, jit);
        for (int k = 0; k < no; k++) {
            int64_t c = count(outs[k], n);
            double *want = xcalloc((size_t)c, sizeof *want);
            for (int64_t i = 0; i < c; i++)
                want[i] = ref[k][i];
            bool exact = outs[k]->producer->op != IR_REDUCE;
            char w[120];
            snprintf(w, sizeof w, "%s, n = %d", what[k], n);
            bad += mismatches(w, jit[k], want, c, exact ? 0 : 1e-6, exact ? 0 : 5e-5);
            free(want);
        }
        free_outs(ref, no);
        free_outs(jit, no);
        for (int k = 0; k < 5; k++)
            free(inv[k]);
    }
    nncc_exec_free(ex);
    ir_program_free(&p);
    nncc_graph_free(g);
    assert_int_equal(bad, 0);
}

/* ---- 4. Gradients ------------------------------------------------------------ */

#define FD_H 0x1p-14
#define FD_REL 1e-6
#define FD_ABS 1e-9
#define CG_REL 1e-4
#define MAXP 16

static double rms(const double *v, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += v[i] * v[i];
    return sqrt(s / (double)(n ? n : 1));
}

static void test_grad(void **state)
{
    (void)state;
    nncc_graph *g = NN(nncc_graph_new());
    uint64_t seed = 29;
    const int batch = 3;
    nncc_tensor *X = input(g, SH(NONE, 3, 4, 5));
    nncc_tensor *I = input(g, SH(NONE, 4)); /* embedding indices, with duplicates */
    nncc_tensor *params[MAXP];
    int np = 0;
#define TP(shape) (params[np++] = param(g, shape, NULL, true, &seed))
    nncc_tensor *W = TP(SH(5, 5));
    nncc_tensor *in2[2] = {X, W};
    nncc_tensor *H = NN(node(g, IR_MATMUL, in2, 2, NULL)); /* (N, 3, 4, 5), depends on W */
    nncc_tensor *parts[32];
    int npart = 0;
#define PART(t) (parts[npart++] = flat(g, NN(t)))
    PART(transpose(g, H, INTS(0, 3, 1, 2)));
    PART(transpose(g, H, INTS(0, 2, 3, 1)));
    /* rows {2, 0}, {3, 2, 1}, {0, 2, 4} */
    PART(sslice(g, H, I64(0, 2, 3, 0), I64(ALL, -1, 0, ALL), I64(1, -2, -1, 2)));
    PART(pad(g, H, I64(0, 1, 0, 0), I64(0, 0, 0, 2), 0.3f));
    PART(reduce(g, H, IR_REDUCE_SUM, 1u << 2, false));
    PART(reduce(g, H, IR_REDUCE_MEAN, (1u << 1) | (1u << 3), true));
    PART(reduce(g, H, IR_REDUCE_MAX, 1u << 3, false));
    PART(reduce(g, H, IR_REDUCE_MIN, (1u << 1) | (1u << 2), false));
    {
        /* every maximum tied with its copy, under any perturbation */
        struct ir_attrs ca = {.axis = 3};
        nncc_tensor *hh[2] = {H, H};
        nncc_tensor *T = NN(node(g, IR_CONCAT, hh, 2, &ca));
        PART(reduce(g, T, IR_REDUCE_MAX, 1u << 3, true));
        PART(reduce(g, T, IR_REDUCE_MIN, (1u << 1) | (1u << 3), false));
    }
    /* batched data, constant indices with duplicates (3, −2 → 2, 3, 2) */
    nncc_tensor *gi = param(g, SH(5), FL(3, -2, 0, 3, 2), false, &seed);
    PART(gather(g, H, gi, 2));
    /* the embedding: E (7, 5) by batched indices */
    nncc_tensor *E = TP(SH(7, 5));
    PART(gather(g, E, I, 0));
    /* unbatched parameters through each op, into matmuls with H */
    nncc_tensor *P1 = TP(SH(4, 5));
    nncc_tensor *P2 = TP(SH(6, 5));
    nncc_tensor *P3 = TP(SH(5, 2));
    nncc_tensor *P4 = TP(SH(5, 3, 2));
    nncc_tensor *P5 = TP(SH(8, 3));
    nncc_tensor *pi = param(g, SH(5), FL(7, -8, 2, 2, 0), false, &seed);
    nncc_tensor *ws[6] = {
        NN(transpose(g, P1, INTS(1, 0))),
        NN(transpose(g, NN(sslice(g, P2, I64(5, 0), I64(-1, ALL), I64(-2, 1))), INTS(1, 0))),
        NN(pad(g, P3, I64(0, 1), I64(0, 1), 0.25f)),
        NN(reduce(g, P4, IR_REDUCE_MAX, 1u << 2, false)),
        NN(gather(g, P5, pi, 0)),
        NN(reduce(g, P4, IR_REDUCE_MEAN, 1u << 1, true)),
    };
    for (int k = 0; k < 6; k++) {
        nncc_tensor *w = ws[k];
        if (w->shape.rank == 3) { /* (5, 1, 2) → (5, 2) */
            struct ir_attrs ra = {.reduce = IR_REDUCE_SUM, .reduce_axes = 2};
            w = NN(node(g, IR_REDUCE, &w, 1, &ra));
        }
        nncc_tensor *mm[2] = {H, w};
        PART(node(g, IR_MATMUL, mm, 2, NULL));
    }
#undef PART
#undef TP
    /* Concatenated by eights (autodiff takes nodes of up to 16 inputs). */
    struct ir_attrs cat = {.axis = 1};
    nncc_tensor *groups[4];
    int ng = 0;
    for (int k = 0; k < npart; k += 8)
        groups[ng++] = NN(node(g, IR_CONCAT, parts + k, npart - k < 8 ? npart - k : 8, &cat));
    nncc_tensor *y = NN(node(g, IR_CONCAT, groups, ng, &cat));
    nncc_tensor *ins[2] = {X, I};
    struct ir_program p;
    OK(ir_program_init(&p, g, ins, 2, &y, 1));

    struct nncc_train_spec ts = {
        .loss = NNCC_MEAN_SQUARED_ERROR,
        .target_shape = y->shape,
        .seed = 7,
        .params = params,
        .n_params = np,
        .gradients_only = true,
    };
    struct ir_plan plans[2];
    struct nncc_lower_opts lo = {.model_name = "tensor_grad", .train = &ts};
    enum nncc_status st = nncc_lower(&p, &lo, plans);
    if (st)
        fail_msg("lowering the step: %s", nncc_last_error());
    const struct ir_program *train = &plans[0].program, *eval = &plans[1].program;
    assert_int_equal(train->n_outputs, 1 + np);
    /* The gradient ops the step must hold. */
    bool seen[IR_OP_COUNT] = {false};
    for (int i = 0; i < train->n_nodes; i++)
        seen[train->nodes[i]->op] = true;
    assert_true(seen[IR_STRIDED_SLICE_GRAD] && seen[IR_REDUCE_GRAD] && seen[IR_GATHER_GRAD] &&
                seen[IR_GATHER_GRAD_PARAM]);

    /* Data: X random, I integers in [−7, 7) with duplicates, targets. */
    float *inv[3];
    int64_t cx = count(X, batch), ci = count(I, batch), cy = count(y, batch);
    inv[0] = xcalloc((size_t)cx, sizeof(float));
    inv[1] = xcalloc((size_t)ci, sizeof(float));
    inv[2] = xcalloc((size_t)cy, sizeof(float));
    for (int64_t i = 0; i < cx; i++)
        inv[0][i] = (float)urand(&seed, -1, 1);
    for (int64_t i = 0; i < ci; i++)
        inv[1][i] = i % 4 == 3 ? inv[1][i - 2] : (float)((int)(rng_next(&seed) % 14) - 7);
    for (int64_t i = 0; i < cy; i++)
        inv[2][i] = (float)urand(&seed, -1, 1);
    const float *const *in = (const float *const *)inv;
    const double h[IR_HYPER_COUNT] = {0.01, 1, 7};

    double **gout = xcalloc((size_t)train->n_outputs, sizeof *gout);
    for (int k = 0; k < train->n_outputs; k++)
        gout[k] = xcalloc((size_t)count(train->outputs[k], batch), sizeof **gout);
    OK(nncc_interp_step_d(train, batch, in, gout, h, false));
    double loss0 = 0, *lp = &loss0;
    OK(nncc_interp_step_d(eval, batch, in, &lp, h, false));
    assert_true(fabs(loss0 - gout[0][0]) <= 1e-12 * fabs(loss0));

    /* 1. Central differences on up to 40 elements of every weight. */
    int bad = 0;
    for (int k = 0; k < np; k++) {
        nncc_tensor *w = params[k];
        int64_t nw = ir_shape_numel(w->shape, 0), stride = nw > 40 ? nw / 40 : 1;
        for (int64_t i = 0; i < nw; i += stride) {
            float keep = w->data[i];
            double lplus, lminus, *o = &lplus;
            w->data[i] = keep + (float)FD_H;
            OK(nncc_interp_step_d(eval, batch, in, &o, h, false));
            o = &lminus;
            w->data[i] = keep - (float)FD_H;
            OK(nncc_interp_step_d(eval, batch, in, &o, h, false));
            w->data[i] = keep;
            double fd = (lplus - lminus) / (2 * FD_H), an = gout[1 + k][i];
            if (!(fabs(an - fd) <= FD_REL * fmax(fabs(an), fabs(fd)) + FD_ABS)) {
                if (bad < 10)
                    print_error("d loss / d %s[%lld]: autodiff %.12g, differences %.12g\n",
                                w->name, (long long)i, an, fd);
                bad++;
            }
        }
    }

    /* 2. The generated step against the oracle's. */
    struct cg_entry e = {.plan = &plans[0], .name = "grad_step", .prefix = "g"};
    check_clean(&e, "tensor_grad");
    struct nncc_exec *ex = NN(nncc_exec_build(&e, 1, "tensor_grad"));
    float **cout = xcalloc((size_t)train->n_outputs, sizeof *cout);
    for (int k = 0; k < train->n_outputs; k++)
        cout[k] = xcalloc((size_t)count(train->outputs[k], batch), sizeof **cout);
    struct nncc_exec_entry *en = &ex->entry[0];
    float *wsp = xcalloc(nncc_exec_ws_floats(en, batch) + 1, sizeof *wsp);
    en->step(batch, en->params, in, cout, wsp, h);
    free(wsp);
    for (int k = 0; k < train->n_outputs; k++) {
        int64_t c = count(train->outputs[k], batch);
        char what[80];
        if (k)
            snprintf(what, sizeof what, "generated gradient of %s", params[k - 1]->name);
        else
            snprintf(what, sizeof what, "generated loss");
        bad += mismatches(what, cout[k], gout[k], c, CG_REL * rms(gout[k], c), CG_REL);
    }
    nncc_exec_free(ex);
    free_outs(cout, train->n_outputs);
    free_outs(gout, train->n_outputs);
    for (int k = 0; k < 3; k++)
        free(inv[k]);
    ir_plan_free(&plans[0]);
    ir_plan_free(&plans[1]);
    ir_program_free(&p);
    nncc_graph_free(g);
    assert_int_equal(bad, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hand),
        cmocka_unit_test(test_rules),
        cmocka_unit_test(test_random),
        cmocka_unit_test(test_grad),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
