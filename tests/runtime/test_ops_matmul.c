/*
 * test_ops_matmul: the matrix products with ONNX MatMul / Gemm semantics
 * (family h4-matmul): batch_matmul (op(a) · op(b), leading axes broadcast,
 * trans_a / trans_b) and batch_matmul_sum (the products summed to an
 * unbatched shape: the gradient of a broadcast weight).  The graphs are
 * built at the IR level (ir_add_node), as the ONNX importer builds them.
 *
 * 1. The reference kernels (runtime/oracle/interp_matmul.c) against
 *    values worked out by hand: plain, transposed and broadcast products,
 *    batched and unbatched operands in every combination, the batch as a
 *    rank-2 operand's rows, and sums over the batch (into one matrix, over
 *    the contraction of two rank-2 batched operands, and keeping an axis).
 *    The shape rules' refusals, each with the words of its message.
 * 2. The generated kernels (codegen/matmul.c through the JIT) against the
 *    reference on random data with odd sizes, for n = 1, 5, 37 and 0: every
 *    batched/unbatched combination, every broadcast, both transposes, each
 *    schedule (rows, fold, general; direct few-row products; k over the
 *    GEMM core's k block; enough work for several threads); then 1 and 2
 *    OpenMP threads must give the same floats bit for bit.  The generated
 *    sources (this forward and the step of 3) compile warning-free with cc
 *    and clang (-std=c11 -Wall -Wextra -Werror -O2, with and without
 *    OpenMP).
 * 3. Gradients: one training model holding every broadcast case (each
 *    batched operand made by a dense matmul of an input with a trainable
 *    weight, so that its gradient reaches a weight), its branches
 *    flattened and concatenated under a mean squared error.  Every
 *    weight's gradient against central finite differences in double
 *    through the reference interpreter (as tests/passes/test_grad.c: h =
 *    2^-14, weights multiples of 2^-10, |g − fd| ≤ 1e-6·max(|g|, |fd|) +
 *    1e-9), then the generated gradient step against the reference step
 *    (1e-4 relative with a floor of 1e-4 × the tensor's RMS).
 *
 * Tolerance of (2): the generated code sums in float, the reference in
 * double; an element's error grows with its K terms, so |jit − ref| ≤
 * 1e-5·|ref| + 1e-4·RMS(output) (K ≤ 400 here, seen errors ~1e-6·RMS),
 * while an indexing mistake is off by O(RMS).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ir/ir.h"
#include "passes/passes.h"
#include "runtime/jit/exec.h"
#include "runtime/oracle/interp.h"

#define FD_H 0x1p-14
#define FD_REL 1e-6
#define FD_ABS 1e-9
#define CG_REL 1e-4

#define MAX_IN 24
#define MAX_OUT 64
#define MAX_PARAMS 48

#define S(...) ((struct nncc_shape){.rank = NNCC_SHAPE_RANK_(__VA_ARGS__), .dim = {__VA_ARGS__}})
#define NNCC_SHAPE_RANK_(...) ((int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)))
#define B_ NNCC_NONE /* the batch in a shape */

/* ---- Helpers ------------------------------------------------------------ */

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

/* A multiple of 2^-10: exact in float, and so is w ± FD_H. */
static float quant(double v) { return (float)ldexp(nearbyint(ldexp(v, 10)), -10); }

static int64_t numel(const nncc_tensor *t) { return ir_shape_numel(t->shape, t->batched ? 1 : 0); }

static int64_t count(const nncc_tensor *t, int batch)
{
    return t->batched ? batch * numel(t) : numel(t);
}

#define ST(expr)                                                                          \
    do {                                                                                  \
        enum nncc_status st_ = (expr);                                                    \
        if (st_ != NNCC_OK)                                                               \
            fail_msg("line %d: %s failed: %s", __LINE__, #expr, nncc_last_error());      \
    } while (0)

/* A graph under construction, its inputs, weights and outputs. */
struct net {
    nncc_graph *g;
    nncc_tensor *in[MAX_IN];
    int n_in;
    nncc_tensor *params[MAX_PARAMS];
    int n_params;
    nncc_tensor *out[MAX_OUT];
    char desc[MAX_OUT][96];
    int n_out;
    int n_nodes; /* for unique names */
    uint64_t rng;
};

static void net_init(struct net *t, uint64_t seed)
{
    memset(t, 0, sizeof *t);
    t->g = nncc_graph_new();
    assert_non_null(t->g);
    t->rng = seed;
}

/* An input shaped (batch, dims…). */
static nncc_tensor *input(struct net *t, struct nncc_shape per_sample)
{
    struct nncc_shape s = {.rank = per_sample.rank + 1, .dim = {B_}};
    memcpy(s.dim + 1, per_sample.dim, sizeof(int64_t) * (size_t)per_sample.rank);
    char name[32];
    snprintf(name, sizeof name, "x%d", t->n_in);
    assert_true(t->n_in < MAX_IN);
    nncc_tensor *x = ir_add_input(t->g, s, name, NULL);
    assert_non_null(x);
    return t->in[t->n_in++] = x;
}

/* A trainable weight: `v` when given, else uniform in ±scale (quantized). */
static nncc_tensor *weight(struct net *t, struct nncc_shape s, const float *v, double scale)
{
    char name[32];
    snprintf(name, sizeof name, "w%d", t->n_params);
    assert_true(t->n_params < MAX_PARAMS);
    nncc_tensor *w = ir_add_param(t->g, s, name, true, NNCC_ZEROS, NULL);
    if (!w)
        fail_msg("weight: %s", nncc_last_error());
    for (int64_t i = 0; i < ir_shape_numel(s, 0); i++)
        w->data[i] = v ? v[i] : quant(urand(&t->rng, -scale, scale));
    return t->params[t->n_params++] = w;
}

/* A node that must be accepted. */
static nncc_tensor *node_(struct net *t, enum ir_op op, nncc_tensor *a, nncc_tensor *b,
                          const struct ir_attrs *at, int line)
{
    char name[32];
    snprintf(name, sizeof name, "n%d", t->n_nodes++);
    nncc_tensor *in[2] = {a, b};
    nncc_tensor *y = ir_add_node(t->g, op, in, b ? 2 : 1, at, NULL, name);
    if (!y)
        fail_msg("line %d: %s refused: %s", line, ir_op(op)->name, nncc_last_error());
    return y;
}

#define BMM(t, a, b, ta_, tb_) \
    node_((t), IR_BATCH_MATMUL, (a), (b), &(struct ir_attrs){.trans_a = (ta_), .trans_b = (tb_)}, __LINE__)
#define BMM_SUM(t, a, b, ta_, tb_, like_)                                                       \
    node_((t), IR_BATCH_MATMUL_SUM, (a), (b),                                                   \
          &(struct ir_attrs){.trans_a = (ta_), .trans_b = (tb_), .like = (like_)}, __LINE__)
/* The dense layer's matmul (x (…, k) · w (k, u)): batched operands made from inputs. */
#define DENSE(t, x, w) node_((t), IR_MATMUL, (x), (w), NULL, __LINE__)

static void output(struct net *t, nncc_tensor *y, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void output(struct net *t, nncc_tensor *y, const char *fmt, ...)
{
    assert_true(t->n_out < MAX_OUT);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->desc[t->n_out], sizeof t->desc[0], fmt, ap);
    va_end(ap);
    t->out[t->n_out++] = y;
}

/* Input data uniform in [-1, 1) for `batch` samples. */
static float **make_inputs(nncc_tensor *const *in, int n_in, int batch, uint64_t seed)
{
    float **x = xcalloc((size_t)n_in + 1, sizeof *x);
    uint64_t s = seed;
    for (int i = 0; i < n_in; i++) {
        int64_t c = count(in[i], batch);
        x[i] = xcalloc((size_t)c, sizeof *x[i]);
        for (int64_t j = 0; j < c; j++)
            x[i][j] = (float)urand(&s, -1, 1);
    }
    return x;
}

static void free_arrays(void *p, int n)
{
    void **a = p;
    for (int i = 0; i < n; i++)
        free(a[i]);
    free(a);
}

static float **alloc_outs(const struct ir_program *p, int batch)
{
    float **o = xcalloc((size_t)p->n_outputs, sizeof *o);
    for (int k = 0; k < p->n_outputs; k++)
        o[k] = xcalloc((size_t)count(p->outputs[k], batch), sizeof *o[k]);
    return o;
}

static double **alloc_outs_d(const struct ir_program *p, int batch)
{
    double **o = xcalloc((size_t)p->n_outputs, sizeof *o);
    for (int k = 0; k < p->n_outputs; k++)
        o[k] = xcalloc((size_t)count(p->outputs[k], batch), sizeof *o[k]);
    return o;
}

static double rms_f(const float *v, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += (double)v[i] * v[i];
    return n ? sqrt(s / (double)n) : 0;
}

/* ---- 1. The reference kernels against hand-worked values ---------------- */

static void expect(const char *what, const float *got, const double *want, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (got[i] != (float)want[i])
            fail_msg("%s: element %lld is %g, expected %g", what, (long long)i, (double)got[i],
                     want[i]);
}

static void test_oracle_hand(void **state)
{
    (void)state;
    struct net t;
    net_init(&t, 1);
    /* x: two samples of 2x3; z: two samples of 3. */
    nncc_tensor *x = input(&t, S(2, 3)), *z = input(&t, S(3));
    nncc_tensor *A = weight(&t, S(2, 3), (const float[]){1, 2, 3, 4, 5, 6}, 0);
    nncc_tensor *Bw = weight(&t, S(3, 2), (const float[]){1, 0, 0, 1, 1, 1}, 0);
    nncc_tensor *Q = weight(&t, S(1, 2, 2), (const float[]){1, 1, 0, 2}, 0);
    nncc_tensor *U = weight(&t, S(2, 1, 1, 2), (const float[]){1, 2, 3, 4}, 0);
    nncc_tensor *V = weight(&t, S(3, 2, 1), (const float[]){1, 0, 0, 1, 1, 1}, 0);
    output(&t, BMM(&t, A, Bw, 0, 0), "A . B");
    output(&t, BMM(&t, A, A, 0, 1), "A . A^T");
    output(&t, BMM(&t, A, A, 1, 0), "A^T . A");
    output(&t, BMM(&t, Bw, A, 1, 1), "B^T . A^T");
    output(&t, BMM(&t, x, Bw, 0, 0), "x (n, 2, 3) . B");
    output(&t, BMM(&t, Q, x, 0, 0), "Q (1, 2, 2) . x");
    output(&t, BMM(&t, U, V, 0, 0), "U (2, 1, 1, 2) . V (3, 2, 1)");
    output(&t, BMM_SUM(&t, x, x, 1, 0, S(3, 3)), "sum x^T . x");
    output(&t, BMM_SUM(&t, z, z, 1, 0, S(3, 3)), "sum z^T . z (contracting the batch)");
    output(&t, BMM(&t, z, Bw, 0, 0), "z (n, 3) . B");
    output(&t, BMM_SUM(&t, x, Bw, 0, 0, S(1, 2, 2)), "sum x . B to (1, 2, 2)");
    output(&t, BMM_SUM(&t, U, V, 0, 0, S(3, 1, 1)), "sum U . V to (3, 1, 1)");
    output(&t, BMM_SUM(&t, x, x, 0, 1, S(2, 2)), "sum x . x^T");
    struct ir_program p;
    ST(ir_program_init(&p, t.g, t.in, t.n_in, t.out, t.n_out));
    ST(ir_verify(&p, "test"));
    const float xv[] = {1, 2, 3, 4, 5, 6, 0, 1, 0, 2, 0, -1}, zv[] = {1, 2, 3, 4, 5, 6};
    const float *ins[2] = {xv, zv};
    float **o = alloc_outs(&p, 2);
    ST(nncc_interp_run(&p, 2, ins, o));
    int k = 0;
    expect(t.desc[k], o[k], (const double[]){4, 5, 10, 11}, 4), k++;
    expect(t.desc[k], o[k], (const double[]){14, 32, 32, 77}, 4), k++;
    expect(t.desc[k], o[k], (const double[]){17, 22, 27, 22, 29, 36, 27, 36, 45}, 9), k++;
    /* Bᵀ (2x3) · Aᵀ (3x2) = (A · B)ᵀ */
    expect(t.desc[k], o[k], (const double[]){4, 10, 5, 11}, 4), k++;
    expect(t.desc[k], o[k], (const double[]){4, 5, 10, 11, 0, 1, 1, -1}, 8), k++;
    /* [[1, 1], [0, 2]] · x[0] and · x[1] */
    expect(t.desc[k], o[k], (const double[]){5, 7, 9, 8, 10, 12, 2, 1, -1, 4, 0, -2}, 12), k++;
    /* (2, 3, 1, 1): U[i] · V[j] = [1 2]·v, [3 4]·v for v = e1, e2, 1 */
    expect(t.desc[k], o[k], (const double[]){1, 2, 3, 3, 4, 7}, 6), k++;
    /* x0ᵀx0 + x1ᵀx1 */
    expect(t.desc[k], o[k], (const double[]){21, 22, 25, 22, 30, 36, 25, 36, 46}, 9), k++;
    expect(t.desc[k], o[k], (const double[]){17, 22, 27, 22, 29, 36, 27, 36, 45}, 9), k++;
    expect(t.desc[k], o[k], (const double[]){4, 5, 10, 11}, 4), k++;
    /* x0·B + x1·B */
    expect(t.desc[k], o[k], (const double[]){4, 6, 11, 10}, 4), k++;
    /* Σ_i U[i] · V[j] */
    expect(t.desc[k], o[k], (const double[]){4, 6, 10}, 3), k++;
    /* x0·x0ᵀ + x1·x1ᵀ = [[14, 32], [32, 77]] + [[1, 0], [0, 5]] */
    expect(t.desc[k], o[k], (const double[]){15, 32, 32, 82}, 4), k++;
    assert_int_equal(k, t.n_out);
    free_arrays(o, p.n_outputs);
    ir_program_free(&p);
    ST(nncc_graph_free(t.g));
}

/* A refused node: NULL with the words `msg` in the error. */
static void refused_(struct net *t, enum ir_op op, nncc_tensor *a, nncc_tensor *b,
                     struct ir_attrs at, const char *msg, int line)
{
    nncc_tensor *in[2] = {a, b};
    nncc_tensor *y = ir_add_node(t->g, op, in, 2, &at, NULL, "refused");
    if (y)
        fail_msg("line %d: %s accepted, expected \"%s\"", line, ir_op(op)->name, msg);
    if (!strstr(nncc_last_error(), msg))
        fail_msg("line %d: error \"%s\" does not say \"%s\"", line, nncc_last_error(), msg);
}
#define REFUSED(op, a, b, at, msg) refused_(&t, (op), (a), (b), (at), (msg), __LINE__)

static void test_shape_rules(void **state)
{
    (void)state;
    struct net t;
    net_init(&t, 2);
    nncc_tensor *x = input(&t, S(2, 3)), *z = input(&t, S(3)), *v = input(&t, S(5));
    nncc_tensor *A = weight(&t, S(2, 3), NULL, 1), *W = weight(&t, S(2, 3, 2), NULL, 1);
    nncc_tensor *W3 = weight(&t, S(4, 3, 2), NULL, 1), *B = weight(&t, S(3, 2), NULL, 1);
    nncc_tensor *r1 = weight(&t, S(3), NULL, 1), *h = weight(&t, S(2, 2, 3), NULL, 1);
    nncc_tensor *k = weight(&t, S(3, 3, 2), NULL, 1);
    struct ir_attrs none = {0}, ta = {.trans_a = true}, tb = {.trans_b = true};
    REFUSED(IR_BATCH_MATMUL, x, W, none, "its first dimension must be 1");
    REFUSED(IR_BATCH_MATMUL, z, W3, none, "fewer axes");
    REFUSED(IR_BATCH_MATMUL, A, z, none, "contract the batch axis");
    REFUSED(IR_BATCH_MATMUL, z, z, ta, "contract the batch axis");
    REFUSED(IR_BATCH_MATMUL, A, z, tb, "its columns");
    REFUSED(IR_BATCH_MATMUL, A, A, none, "inner dimensions differ");
    REFUSED(IR_BATCH_MATMUL, x, v, none, "contract the batch axis");
    REFUSED(IR_BATCH_MATMUL, h, k, none, "do not broadcast");
    REFUSED(IR_BATCH_MATMUL, r1, B, none, "rank >= 2");
    REFUSED(IR_BATCH_MATMUL_SUM, x, B, ((struct ir_attrs){.like = S(3, 2)}), "cannot sum");
    REFUSED(IR_BATCH_MATMUL_SUM, x, B, ((struct ir_attrs){.like = S(2, 2, 2)}), "cannot sum");
    REFUSED(IR_BATCH_MATMUL_SUM, z, B, ((struct ir_attrs){.like = S(1, 2)}), "cannot sum");
    REFUSED(IR_BATCH_MATMUL_SUM, z, z, ((struct ir_attrs){.trans_a = true, .like = S(1, 3)}),
            "cannot sum");
    /* What is accepted: the batch as a's rows; an unbatched operand of the
     * batched one's rank with 1 first; the sum over the batch. */
    nncc_tensor *ok = BMM(&t, z, B, 0, 0);
    assert_true(ok->batched);
    assert_true(ir_shape_eq(ok->shape, S(B_, 2)));
    ok = BMM_SUM(&t, z, z, 1, 0, S(3, 3));
    assert_false(ok->batched);
    ok = BMM(&t, weight(&t, S(1, 4, 2), NULL, 1), x, 0, 0);
    assert_true(ir_shape_eq(ok->shape, S(B_, 4, 3)));
    ST(nncc_graph_free(t.g));
}

/* ---- 2. Generated kernels against the reference --------------------------- */

/* The loaded object's omp_set_num_threads / omp_get_max_threads, or false
 * (generated code built without OpenMP). */
static bool omp_hooks(struct nncc_exec *ex, void (**set)(int), int (**get)(void))
{
    void *s = dlsym(ex->handle, "omp_set_num_threads"), *g = dlsym(ex->handle, "omp_get_max_threads");
    if (!s || !g)
        return false;
    memcpy(set, &s, sizeof s);
    memcpy(get, &g, sizeof g);
    return true;
}

static void run_forward(struct nncc_exec *ex, int batch, float **in, float **out)
{
    struct nncc_exec_entry *e = &ex->entry[0];
    float *ws = xcalloc(nncc_exec_ws_floats(e, batch) + 1, sizeof *ws);
    e->forward(batch, (const float *const *)e->params, (const float *const *)in, out, ws);
    free(ws);
}

/* Every output of the compiled forward against the reference for `batch`
 * samples; returns the mismatches. */
static int compare_forward(struct net *t, const struct ir_program *p, struct nncc_exec *ex,
                           int batch)
{
    float **in = make_inputs(t->in, t->n_in, batch, 77 + (uint64_t)batch);
    float **ref = alloc_outs(p, batch), **got = alloc_outs(p, batch);
    ST(nncc_interp_run(p, batch, (const float *const *)in, ref));
    run_forward(ex, batch, in, got);
    int bad = 0;
    for (int k = 0; k < p->n_outputs; k++) {
        int64_t c = count(p->outputs[k], batch);
        double rms = rms_f(ref[k], c), worst = 0;
        for (int64_t i = 0; i < c; i++) {
            double d = fabs((double)got[k][i] - ref[k][i]);
            double tol = 1e-5 * fabs((double)ref[k][i]) + 1e-4 * rms;
            worst = fmax(worst, d / tol);
            if (!(d <= tol) && bad++ < 10)
                print_error("n = %d, %s: element %lld is %.9g, the reference %.9g\n", batch,
                            t->desc[k], (long long)i, (double)got[k][i], (double)ref[k][i]);
        }
        if (rms == 0 && batch > 0 && bad++ < 10)
            print_error("n = %d, %s: the reference is all zeros\n", batch, t->desc[k]);
        if (getenv("TEST_VERBOSE"))
            print_message("n = %2d  %-52s worst %.3f tol\n", batch, t->desc[k], worst);
    }
    /* 1 and 2 threads: the same floats (each element is one thread's, summed
     * in an order that does not depend on the split). */
    void (*set)(int);
    int (*get)(void);
    if (omp_hooks(ex, &set, &get)) {
        int was = get();
        float **one = alloc_outs(p, batch);
        set(1);
        run_forward(ex, batch, in, one);
        set(2);
        run_forward(ex, batch, in, got);
        set(was);
        for (int k = 0; k < p->n_outputs; k++)
            if (memcmp(one[k], got[k], sizeof(float) * (size_t)count(p->outputs[k], batch)) &&
                bad++ < 10)
                print_error("n = %d, %s: 1 and 2 threads differ\n", batch, t->desc[k]);
        free_arrays(one, p->n_outputs);
        if (getenv("TEST_VERBOSE"))
            print_message("n = %d: 1 and 2 threads compared\n", batch);
    }
    free_arrays(in, t->n_in);
    free_arrays(ref, p->n_outputs);
    free_arrays(got, p->n_outputs);
    return bad;
}

/* The generated source compiles warning-free as ISO C11 (-Wall -Wextra
 * -Werror -O2) with cc, with and without OpenMP, and with clang when there
 * is one: kernels of unbatched products must not leave `n` unused, etc. */
static void compiles_cleanly(struct cg_entry *e, const char *name)
{
    char *src = NULL;
    size_t len = 0;
    ST(nncc_codegen(e, 1, name, &src, &len));
    char dir[] = "/tmp/nncc_matmul_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[600], cmd[1600];
    snprintf(path, sizeof path, "%s/%s.c", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(src, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
    free(src);
    const char *how[] = {"cc", "cc -fopenmp", "clang -fopenmp"};
    for (int k = 0; k < 3; k++) {
        if (k == 2 && system("clang --version > /dev/null 2>&1") != 0)
            continue;
        snprintf(cmd, sizeof cmd,
                 "%s -std=c11 -Wall -Wextra -Werror -O2 -c %s -o %s/out.o > %s/log 2>&1", how[k],
                 path, dir, dir);
        if (system(cmd) != 0) {
            snprintf(cmd, sizeof cmd, "head -c 3000 %s/log >&2", dir);
            int shown = system(cmd);
            (void)shown;
            fail_msg("the generated source (%s) does not compile cleanly with %s", path, how[k]);
        }
    }
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_jit_forward(void **state)
{
    (void)state;
    struct net t;
    net_init(&t, 3);
    nncc_tensor *x1 = input(&t, S(5, 13)), *x2 = input(&t, S(13)), *x3 = input(&t, S(3, 7, 13));
    nncc_tensor *x4 = input(&t, S(3, 13, 9)), *x5 = input(&t, S(1, 7, 13));
    nncc_tensor *x6 = input(&t, S(13, 9)), *x9 = input(&t, S(1, 13, 9));
    nncc_tensor *x7 = input(&t, S(2, 40, 50)), *x8 = input(&t, S(2, 50, 45));
    nncc_tensor *x10 = input(&t, S(37, 400)), *x11 = input(&t, S(3, 2, 13));
    nncc_tensor *x12 = input(&t, S(3, 13, 9)), *x13 = input(&t, S(37, 33));
    nncc_tensor *x14 = input(&t, S(3, 9, 400)), *x15 = input(&t, S(3, 400, 11));
    nncc_tensor *x16 = input(&t, S(1, 7, 9));
    nncc_tensor *Wkp = weight(&t, S(13, 9), NULL, 1), *Wpk = weight(&t, S(9, 13), NULL, 1);
    nncc_tensor *Wmk = weight(&t, S(7, 13), NULL, 1), *Wkm = weight(&t, S(13, 7), NULL, 1);
    nncc_tensor *W1h = weight(&t, S(1, 3, 13, 9), NULL, 1), *Wh = weight(&t, S(3, 13, 9), NULL, 1);
    nncc_tensor *W2 = weight(&t, S(2, 1, 7, 13), NULL, 1), *Wbig = weight(&t, S(400, 33), NULL, 1);
    nncc_tensor *Wb2 = weight(&t, S(11, 400), NULL, 1), *Wpm = weight(&t, S(13, 7), NULL, 1);
    /* batch_matmul: rows schedule (b the same matrix everywhere) */
    output(&t, BMM(&t, x1, Wkp, 0, 0), "x (n, 5, 13) . w (13, 9)");
    output(&t, BMM(&t, x1, Wpk, 0, 1), "x (n, 5, 13) . w (9, 13)^T");
    output(&t, BMM(&t, x2, Wkp, 0, 0), "x (n, 13) . w (13, 9)");
    output(&t, BMM(&t, x2, Wpk, 0, 1), "x (n, 13) . w (9, 13)^T");
    output(&t, BMM(&t, x3, Wkp, 0, 0), "x (n, 3, 7, 13) . w (13, 9)");
    output(&t, BMM(&t, x10, Wbig, 0, 0), "x (n, 37, 400) . w (400, 33)");
    output(&t, BMM(&t, W2, Wh, 0, 0), "w (2, 1, 7, 13) . w (3, 13, 9), no batch");
    /* general: both batched, broadcasts, transposes, weights with leading axes */
    output(&t, BMM(&t, x3, x4, 0, 0), "x (n, 3, 7, 13) . x (n, 3, 13, 9)");
    output(&t, BMM(&t, x3, x3, 0, 1), "x (n, 3, 7, 13) . x^T");
    output(&t, BMM(&t, x4, x3, 1, 1), "x (n, 3, 13, 9)^T . x (n, 3, 7, 13)^T");
    output(&t, BMM(&t, x5, x4, 0, 0), "x (n, 1, 7, 13) . x (n, 3, 13, 9)");
    output(&t, BMM(&t, x3, x9, 0, 0), "x (n, 3, 7, 13) . x (n, 1, 13, 9)");
    output(&t, BMM(&t, Wmk, x6, 0, 0), "w (7, 13) . x (n, 13, 9)");
    output(&t, BMM(&t, Wkm, x6, 1, 0), "w (13, 7)^T . x (n, 13, 9)");
    output(&t, BMM(&t, x3, W1h, 0, 0), "x (n, 3, 7, 13) . w (1, 3, 13, 9)");
    output(&t, BMM(&t, x3, Wh, 0, 0), "x (n, 3, 7, 13) . w (3, 13, 9)");
    output(&t, BMM(&t, x4, Wpm, 1, 0), "x (n, 3, 13, 9)^T . w (13, 7)");
    output(&t, BMM(&t, x11, x12, 0, 0), "x (n, 3, 2, 13) . x (n, 3, 13, 9): 2 rows");
    output(&t, BMM(&t, x7, x8, 0, 0), "x (n, 2, 40, 50) . x (n, 2, 50, 45)");
    output(&t, BMM(&t, x14, x15, 0, 0), "x (n, 3, 9, 400) . x (n, 3, 400, 11)");
    output(&t, BMM(&t, x14, Wb2, 0, 1), "x (n, 3, 9, 400) . w (11, 400)^T");
    /* batch_matmul_sum: fold, general with and without kept axes */
    output(&t, BMM_SUM(&t, x1, x1, 1, 0, S(13, 13)), "sum x (n, 5, 13)^T . x");
    output(&t, BMM_SUM(&t, x2, x2, 1, 0, S(13, 13)), "sum x (n, 13)^T . x (over the batch)");
    output(&t, BMM_SUM(&t, x3, x3, 1, 0, S(13, 13)), "sum x (n, 3, 7, 13)^T . x");
    output(&t, BMM_SUM(&t, x10, x13, 1, 0, S(400, 33)), "sum x (n, 37, 400)^T . x (n, 37, 33)");
    output(&t, BMM_SUM(&t, x3, x4, 0, 0, S(1, 3, 7, 9)), "sum x . x to (1, 3, 7, 9)");
    output(&t, BMM_SUM(&t, x3, x4, 0, 0, S(3, 7, 9)), "sum x . x to (3, 7, 9)");
    output(&t, BMM_SUM(&t, x3, x4, 0, 0, S(7, 9)), "sum x . x to (7, 9)");
    output(&t, BMM_SUM(&t, x3, x3, 0, 1, S(7, 7)), "sum x . x^T to (7, 7)");
    output(&t, BMM_SUM(&t, x3, x3, 1, 0, S(3, 13, 13)), "sum x^T . x to (3, 13, 13)");
    output(&t, BMM_SUM(&t, Wmk, x6, 0, 0, S(7, 9)), "sum w (7, 13) . x (n, 13, 9)");
    output(&t, BMM_SUM(&t, x5, x4, 0, 0, S(7, 9)), "sum x (n, 1, 7, 13) . x (n, 3, 13, 9)");
    output(&t, BMM_SUM(&t, W2, Wh, 0, 0, S(3, 7, 9)), "sum w (2, 1, 7, 13) . w (3, 13, 9)");
    output(&t, BMM_SUM(&t, x7, x7, 1, 0, S(2, 50, 50)), "sum x (n, 2, 40, 50)^T . x, kept 2");
    output(&t, BMM_SUM(&t, x3, x16, 1, 0, S(13, 9)), "sum x (n, 3, 7, 13)^T . x (n, 1, 7, 9)");
    output(&t, BMM_SUM(&t, x16, x3, 1, 0, S(9, 13)), "sum x (n, 1, 7, 9)^T . x (n, 3, 7, 13)");
    output(&t, BMM_SUM(&t, Wmk, x16, 1, 0, S(13, 9)), "sum w (7, 13)^T . x (n, 1, 7, 9)");
    struct ir_program p;
    ST(ir_program_init(&p, t.g, t.in, t.n_in, t.out, t.n_out));
    struct ir_plan plans[2];
    struct nncc_lower_opts lo = {.model_name = "matmul_forward"};
    ST(nncc_lower(&p, &lo, plans));
    struct cg_entry e = {.plan = &plans[0], .name = "nncc_forward", .prefix = ""};
    struct nncc_exec *ex = nncc_exec_build(&e, 1, "matmul_forward");
    if (!ex)
        fail_msg("the generated code does not build: %s", nncc_last_error());
    compiles_cleanly(&e, "matmul_forward");
    int bad = 0;
    const int batches[] = {1, 5, 37, 0}; /* 0: empty sums are zeros */
    for (int b = 0; b < 4; b++)
        bad += compare_forward(&t, &p, ex, batches[b]);
    nncc_exec_free(ex);
    ir_plan_free(&plans[0]);
    ir_plan_free(&plans[1]);
    ir_program_free(&p);
    ST(nncc_graph_free(t.g));
    assert_int_equal(bad, 0);
}

/* ---- 3. Gradients --------------------------------------------------------- */

struct grad_model {
    struct net t;
    struct ir_program fwd;
    struct nncc_train_spec ts;
    struct ir_plan plans[2]; /* the gradients-only step, the evaluation step */
    float **in;              /* the inputs, then the target */
    int batch;
};

#define WT(...) weight(t, S(__VA_ARGS__), NULL, 0.6)

/* Every broadcast case in one model: batched operands are dense matmuls of
 * inputs with trainable weights (their gradients reach those weights),
 * unbatched ones are weights or products of weights; each branch is
 * flattened, and all are concatenated under a mean squared error. */
static void grad_model_init(struct grad_model *gm, int batch)
{
    memset(gm, 0, sizeof *gm);
    struct net *t = &gm->t;
    net_init(t, 4);
    nncc_tensor *br[32];
    int nb = 0;
    /* A dense layer's activations (n, 4, 3) and (n, 3) times weights. */
    nncc_tensor *a1 = DENSE(t, input(t, S(4, 5)), WT(5, 3));
    br[nb++] = BMM(t, a1, WT(3, 4), 0, 0);
    br[nb++] = BMM(t, a1, WT(2, 3), 0, 1);
    nncc_tensor *a2 = DENSE(t, input(t, S(5)), WT(5, 3));
    br[nb++] = BMM(t, a2, WT(4, 3), 0, 1);
    br[nb++] = BMM(t, a2, WT(3, 2), 0, 0);
    /* Attention: softmax-free q·kᵀ·v on (n, 2, 3, ·). */
    nncc_tensor *x4 = input(t, S(2, 3, 5));
    nncc_tensor *q = DENSE(t, x4, WT(5, 4)), *k = DENSE(t, x4, WT(5, 4));
    nncc_tensor *v = DENSE(t, x4, WT(5, 2));
    br[nb++] = BMM(t, BMM(t, q, k, 0, 1), v, 0, 0);
    /* Batched operands broadcast over the head axis: (n, 1, ·, ·). */
    nncc_tensor *a4 = DENSE(t, input(t, S(1, 3, 5)), WT(5, 4));
    nncc_tensor *b4 = DENSE(t, input(t, S(2, 4, 5)), WT(5, 3));
    br[nb++] = BMM(t, a4, b4, 0, 0);
    br[nb++] = BMM(t, q, DENSE(t, input(t, S(1, 4, 5)), WT(5, 2)), 0, 0);
    br[nb++] = BMM(t, a4, WT(2, 4, 3), 0, 0);
    /* Weights times activations, and activations times weights with
     * leading axes. */
    nncc_tensor *b5 = DENSE(t, input(t, S(4, 5)), WT(5, 3));
    br[nb++] = BMM(t, WT(3, 4), b5, 0, 0);
    br[nb++] = BMM(t, WT(4, 3), b5, 1, 0);
    br[nb++] = BMM(t, WT(2, 3), b5, 0, 1);
    br[nb++] = BMM(t, q, WT(1, 2, 4, 3), 0, 0);
    br[nb++] = BMM(t, q, WT(2, 4, 3), 0, 0);
    br[nb++] = BMM(t, WT(2, 2, 3), q, 0, 0);
    /* Transposed batched operands. */
    br[nb++] = BMM(t, b4, WT(4, 2), 1, 0);
    br[nb++] = BMM(t, b4, q, 1, 1);
    /* Products of weights (no batch, broadcasting among themselves) that
     * feed batched ones. */
    br[nb++] = BMM(t, b5, BMM(t, WT(3, 4), WT(4, 3), 0, 0), 0, 0);
    nncc_tensor *u2 = BMM(t, WT(2, 1, 3, 4), WT(3, 4, 3), 0, 0); /* (2, 3, 3, 3) */
    br[nb++] = BMM(t, DENSE(t, input(t, S(2, 3, 4, 5)), WT(5, 3)), u2, 0, 0);
    nncc_tensor *flat[32];
    for (int i = 0; i < nb; i++)
        flat[i] = node_(t, IR_RESHAPE, br[i], NULL, &(struct ir_attrs){.target = S(-1)}, __LINE__);
    /* (autodiff takes nodes of at most 16 inputs) */
    nncc_tensor *half[2];
    for (int h = 0; h < 2; h++) {
        half[h] = ir_add_node(t->g, IR_CONCAT, flat + h * (nb / 2), h ? nb - nb / 2 : nb / 2,
                              &(struct ir_attrs){.axis = 1}, NULL, h ? "concat1" : "concat0");
        assert_non_null(half[h]);
    }
    nncc_tensor *y = ir_add_node(t->g, IR_CONCAT, half, 2, &(struct ir_attrs){.axis = 1}, NULL,
                                 "concat");
    assert_non_null(y);
    t->out[t->n_out++] = y;
    ST(ir_program_init(&gm->fwd, t->g, t->in, t->n_in, t->out, 1));
    gm->ts = (struct nncc_train_spec){
        .loss = NNCC_MEAN_SQUARED_ERROR,
        .target_shape = y->shape,
        .seed = 7,
        .params = t->params,
        .n_params = t->n_params,
        .gradients_only = true,
    };
    struct nncc_lower_opts lo = {.model_name = "matmul_grad", .train = &gm->ts};
    ST(nncc_lower(&gm->fwd, &lo, gm->plans));
    gm->batch = batch;
    gm->in = make_inputs(t->in, t->n_in, batch, 99);
    int64_t ny = batch * numel(y);
    gm->in[t->n_in] = xcalloc((size_t)ny, sizeof(float));
    uint64_t s = 1234;
    for (int64_t i = 0; i < ny; i++)
        gm->in[t->n_in][i] = (float)urand(&s, -1, 1);
    /* The step has the gradients the cases are about. */
    int sums = 0, sum_tos = 0;
    const struct ir_program *tp = &gm->plans[0].program;
    for (int i = 0; i < tp->n_nodes; i++) {
        sums += tp->nodes[i]->op == IR_BATCH_MATMUL_SUM;
        sum_tos += tp->nodes[i]->op == IR_SUM_TO;
    }
    assert_true(sums >= 10);
    assert_true(sum_tos >= 2);
}

static void grad_model_free(struct grad_model *gm)
{
    free_arrays(gm->in, gm->t.n_in + 1);
    ir_plan_free(&gm->plans[0]);
    ir_plan_free(&gm->plans[1]);
    ir_program_free(&gm->fwd);
    ST(nncc_graph_free(gm->t.g));
}

static const double step_h[IR_HYPER_COUNT] = {[IR_HYPER_LR] = 1e-3, [IR_HYPER_STEP] = 1,
                                              [IR_HYPER_SEED] = 4242};

static double eval_loss(struct grad_model *gm, double **outs)
{
    ST(nncc_interp_step_d(&gm->plans[1].program, gm->batch, (const float *const *)gm->in, outs,
                          NULL, false));
    return outs[0][0];
}

static void test_grad_fd(void **state)
{
    (void)state;
    struct grad_model gm;
    grad_model_init(&gm, 3);
    const struct ir_program *tp = &gm.plans[0].program;
    assert_int_equal(tp->n_outputs, 1 + gm.t.n_params);
    double **g = alloc_outs_d(tp, gm.batch), **e = alloc_outs_d(&gm.plans[1].program, gm.batch);
    ST(nncc_interp_step_d(tp, gm.batch, (const float *const *)gm.in, g, step_h, false));
    double loss = eval_loss(&gm, e);
    assert_true(loss == g[0][0] && isfinite(loss));
    int bad = 0;
    double worst = 0;
    uint64_t s = 5;
    for (int i = 0; i < gm.t.n_params; i++) {
        nncc_tensor *w = gm.t.params[i];
        int64_t n = numel(w), m = n < 40 ? n : 40;
        for (int64_t q = 0; q < m; q++) {
            int64_t j = n <= 40 ? q : (int64_t)(rng_next(&s) % (uint64_t)n);
            float w0 = w->data[j];
            w->data[j] = w0 + (float)FD_H;
            double lp = eval_loss(&gm, e);
            w->data[j] = w0 - (float)FD_H;
            double lm = eval_loss(&gm, e);
            w->data[j] = w0;
            double fd = (lp - lm) / (2 * FD_H), an = g[1 + i][j];
            double err = fabs(an - fd), tol = FD_REL * fmax(fabs(an), fabs(fd)) + FD_ABS;
            worst = fmax(worst, err / tol);
            if (!(err <= tol) && bad++ < 10)
                print_error("d loss / d %s%s[%lld]: autodiff %.12g, finite differences %.12g\n",
                            w->name, nncc_shape_str(w->shape, (char[64]){0}, 64), (long long)j,
                            an, fd);
        }
    }
    if (getenv("TEST_VERBOSE"))
        print_message("finite differences: loss %g, worst %.3f tol\n", loss, worst);
    free_arrays(g, tp->n_outputs);
    free_arrays(e, gm.plans[1].program.n_outputs);
    grad_model_free(&gm);
    assert_int_equal(bad, 0);
}

static void test_grad_jit(void **state)
{
    (void)state;
    struct grad_model gm;
    grad_model_init(&gm, 5);
    const struct ir_program *tp = &gm.plans[0].program;
    double **ref = alloc_outs_d(tp, gm.batch);
    ST(nncc_interp_step_d(tp, gm.batch, (const float *const *)gm.in, ref, step_h, false));
    struct cg_entry ce = {.plan = &gm.plans[0], .name = "grad_step", .prefix = "g"};
    compiles_cleanly(&ce, "matmul_grad");
    struct nncc_exec *ex = nncc_exec_build(&ce, 1, "matmul_grad");
    if (!ex)
        fail_msg("the generated step does not build: %s", nncc_last_error());
    struct nncc_exec_entry *en = &ex->entry[0];
    float **got = alloc_outs(tp, gm.batch);
    float *ws = xcalloc(nncc_exec_ws_floats(en, gm.batch) + 1, sizeof *ws);
    en->step(gm.batch, en->params, (const float *const *)gm.in, got, ws, step_h);
    free(ws);
    int bad = 0;
    for (int k = 0; k < tp->n_outputs; k++) {
        int64_t c = count(tp->outputs[k], gm.batch);
        double rms = 0;
        for (int64_t i = 0; i < c; i++)
            rms += ref[k][i] * ref[k][i];
        rms = sqrt(rms / (double)c);
        for (int64_t i = 0; i < c; i++) {
            double d = fabs((double)got[k][i] - ref[k][i]);
            if (!(d <= CG_REL * (fabs(ref[k][i]) + rms)) && bad++ < 10)
                print_error("output %d (%s)[%lld]: generated %.9g, reference %.9g\n", k,
                            k ? gm.t.params[k - 1]->name : "loss", (long long)i,
                            (double)got[k][i], ref[k][i]);
        }
    }
    free_arrays(got, tp->n_outputs);
    free_arrays(ref, tp->n_outputs);
    nncc_exec_free(ex);
    grad_model_free(&gm);
    assert_int_equal(bad, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_oracle_hand),
        cmocka_unit_test(test_shape_rules),
        cmocka_unit_test(test_jit_forward),
        cmocka_unit_test(test_grad_fd),
        cmocka_unit_test(test_grad_jit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
