/*
 * bench.c — `nncc bench FILE.c`: how fast a model's compiled code is.
 *
 * Loads FILE.c's model as `nncc summary` does (it must compile itself with
 * nncc_compile to be trained) and measures, on synthetic data (uniform
 * inputs, one-hot targets for categorical losses):
 *
 *   - compile: wall time to make the training/eval steps and the inference
 *     forward (autodiff, codegen, compiler, dlopen), the compiler's own time
 *     and the cache state; then the same for a second instance of the model,
 *     which always hits the cache ("hot").  --cold points the JIT cache at a
 *     fresh temporary folder (removed afterwards) so the first build is cold;
 *   - the training step and the eval (forward + loss) step at --batch: a few
 *     warm-up calls, then --iters timed repetitions of enough calls to last
 *     ≥ 20 ms each, and their median;
 *   - inference throughput at batch 256 through the compiled forward entry,
 *     batch-1 latency through nncc_predict_rows_n (the median of single calls);
 *   - the workspace bytes of each entry, as the memory planner laid it out
 *     (passes/memplan.c), and the training step's planned value arenas
 *     next to what one region per value would take;
 *   - FLOPs per sample counted from the IR's shapes: matmul and conv ops
 *     (forward and their backward ops), 2 per multiply-add; elementwise,
 *     pooling, loss and optimizer work is not counted;
 *   - the machine's fp32 peak, measured on the spot: an FMA-throughput kernel
 *     (independent vector accumulators, GCC/Clang vector extensions) compiled
 *     through the JIT with -O2 -march=native, on 1 thread and with OpenMP on
 *     all threads; the step's GFLOP/s as a share of it.
 *
 *   - the training step's ten slowest kernels: the step is built once more
 *     with a timer around every kernel call (cg_entry.profile) and run for
 *     about 0.3 s; each kernel's time per step, share and GFLOP/s.
 *
 * The last line printed is one JSON object (see print_json).
 */
#define _GNU_SOURCE /* RTLD_DEFAULT, nftw */
#include <dlfcn.h>
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "cli/cli.h"
#include "runtime/jit/jit.h"
#include "runtime/train/train.h"

const char usage_bench[] =
    "usage: nncc bench FILE.c|FILE.safetensors|FILE.onnx [--entry NAME] [--batch N]\n"
    "                  [--threads N] [--train|--infer] [--iters N] [--cold]\n"
    "                  [--input-shape SHAPES]\n"
    "\n"
    "Compiles FILE.c, calls its model entry and measures the model's compiled code\n"
    "on synthetic data: compile time and cache state (cold, then hot), time per\n"
    "training step and per forward (eval) step at --batch, training and inference\n"
    "samples/s (inference at batch 256), batch-1 latency, the workspace size, FLOPs\n"
    "per sample and the GFLOP/s reached, against the machine's fp32 peak measured\n"
    "on the spot by an FMA-throughput micro-benchmark.  The model must be compiled\n"
    "(nncc_compile) inside the entry to be trained; an ONNX model is measured for\n"
    "inference (it has no loss).  The last line of output is one JSON object with\n"
    "the results.\n"
    "\n"
    "options:\n"
    "  --entry NAME   the function returning the model (nncc_model *NAME(void))\n"
    "  --input-shape SHAPES  FILE.onnx: fix dynamic dimensions (1x3x224x224,...)\n"
    "  --batch N      training batch size (default 64)\n"
    "  --threads N    OpenMP threads for the generated code and the multi-thread\n"
    "                 peak (default: OMP_NUM_THREADS, else all processors)\n"
    "  --train        measure training only\n"
    "  --infer        measure inference only (the model need not be compiled)\n"
    "  --iters N      timed repetitions per measurement, median taken (default 10)\n"
    "  --cold         use a fresh, temporary JIT cache, so the first build is cold\n"
    "  -h, --help     show this help\n";

struct bench_opts {
    struct args a;
    int batch, threads, iters;
    bool train, infer, cold;
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- Options ------------------------------------------------------------ */

static bool parse_int(const char *s, int lo, int hi, int *v)
{
    char *end;
    errno = 0;
    long x = strtol(s, &end, 10);
    if (errno || end == s || *end || x < lo || x > hi)
        return false;
    *v = (int)x;
    return true;
}

/* Returns -1 to go on, else an exit code. */
static int parse(int argc, char **argv, struct bench_opts *o)
{
    o->a.entry = "model";
    o->batch = 64;
    o->iters = 10;
    static const struct {
        const char *name;
        int lo, hi;
        size_t off;
    } ints[] = {
        {"--batch", 1, 1 << 20, offsetof(struct bench_opts, batch)},
        {"--threads", 1, 4096, offsetof(struct bench_opts, threads)},
        {"--iters", 1, 100000, offsetof(struct bench_opts, iters)},
    };
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        bool done = false;
        for (size_t k = 0; k < sizeof ints / sizeof ints[0] && !done; k++) {
            size_t len = strlen(ints[k].name);
            if (strncmp(s, ints[k].name, len) != 0 || (s[len] && s[len] != '='))
                continue;
            const char *v = s[len] == '=' ? s + len + 1 : NULL;
            if (!v) {
                if (i + 1 >= argc)
                    return usage_error("bench", "option '%s' needs a number", s);
                v = argv[++i];
            }
            char what[64];
            snprintf(what, sizeof what, "%s %.30s", ints[k].name, v);
            if (!parse_int(v, ints[k].lo, ints[k].hi, (int *)((char *)o + ints[k].off)))
                return usage_error("bench", "%s: expected a positive whole number", what);
            done = true;
        }
        if (done)
            continue;
        if (strcmp(s, "-h") == 0 || strcmp(s, "--help") == 0) {
            fputs(usage_bench, stdout);
            return 0;
        } else if (strcmp(s, "--entry") == 0) {
            if (i + 1 >= argc)
                return usage_error("bench", "option '%s' needs a function name", s);
            o->a.entry = argv[++i];
        } else if (strncmp(s, "--entry=", 8) == 0) {
            o->a.entry = s + 8;
        } else if (strcmp(s, "--input-shape") == 0) {
            if (i + 1 >= argc)
                return usage_error("bench", "option '%s' needs shapes like 1x3x224x224", s);
            o->a.input_shape = argv[++i];
            if (!cli_input_shape_ok("bench", o->a.input_shape))
                return EXIT_USAGE;
        } else if (strcmp(s, "--train") == 0) {
            o->train = true;
        } else if (strcmp(s, "--infer") == 0) {
            o->infer = true;
        } else if (strcmp(s, "--cold") == 0) {
            o->cold = true;
        } else if (s[0] == '-' && s[1]) {
            return usage_error("bench", "unknown option '%s'", s);
        } else if (o->a.file) {
            return usage_error("bench", "unexpected argument '%s' (one FILE.c only)", s);
        } else {
            o->a.file = s;
        }
    }
    if (!o->a.file)
        return usage_error("bench", "%s", "missing FILE.c (or FILE.safetensors, FILE.onnx)");
    if (!o->a.entry[0])
        return usage_error("bench", "%s", "--entry needs a non-empty function name");
    if (o->train && o->infer)
        return usage_error("bench", "%s", "--train and --infer exclude each other");
    size_t flen = strlen(o->a.file);
    bool onnx = flen > 5 && strcmp(o->a.file + flen - 5, ".onnx") == 0;
    if (!o->train && !o->infer) { /* an imported model has no loss: inference */
        o->infer = true;
        o->train = !onnx;
    }
    return -1;
}

/* ---- Synthetic data ----------------------------------------------------- */

static float rnd(uint64_t *s) /* xorshift64*, uniform in [0, 1) */
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return (float)((*s * 2685821657736338717ull) >> 40) / (float)(1 << 24);
}

/* Rows of n samples for a target of per-sample shape `out` under `loss`. */
static void fill_targets(float *y, int64_t n, int64_t row, enum nncc_loss loss, uint64_t *s)
{
    for (int64_t i = 0; i < n; i++) {
        float *r = y + i * row;
        if (loss == NNCC_CATEGORICAL_CROSSENTROPY) {
            memset(r, 0, sizeof *r * (size_t)row);
            r[(int64_t)(rnd(s) * (float)row) % row] = 1;
        } else if (loss == NNCC_BINARY_CROSSENTROPY) {
            for (int64_t k = 0; k < row; k++)
                r[k] = rnd(s) < 0.5f ? 0.0f : 1.0f;
        } else {
            for (int64_t k = 0; k < row; k++)
                r[k] = rnd(s);
        }
    }
}

/* ---- Timing ------------------------------------------------------------- */

enum job_kind { JOB_STEP, JOB_FORWARD, JOB_PREDICT };

/* One thing to call repeatedly. */
struct job {
    enum job_kind kind;
    struct nncc_exec_entry *e;
    int n;
    const float **in;
    float **out;
    float *ws;
    double h[IR_HYPER_COUNT];
    nncc_model *m; /* JOB_PREDICT */
    int n_outputs;
    bool failed;
};

static void job_run(struct job *j)
{
    switch (j->kind) {
    case JOB_STEP:
        if (j->h[IR_HYPER_STEP] > 0) /* a training step: the optimizer counts */
            nncc_train_hyper_next(j->h);
        j->e->step(j->n, j->e->params, j->in, j->out, j->ws, j->h);
        break;
    case JOB_FORWARD:
        j->e->forward(j->n, (const float *const *)j->e->params, j->in, j->out, j->ws);
        break;
    case JOB_PREDICT: {
        struct nncc_array *outs[64] = {0};
        if (nncc_predict_rows_n(j->m, j->in, j->n, outs) != NNCC_OK)
            j->failed = true;
        for (int k = 0; k < j->n_outputs && k < 64; k++)
            nncc_array_free(outs[k]);
        break;
    }
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Seconds per call: warm-up, then the median of `reps` repetitions of
 * enough calls to last about min_s each (single calls when min_s is 0,
 * for latencies).  Negative when out of memory. */
static double time_job(struct job *j, int reps, double min_s)
{
    double t0 = now();
    job_run(j);
    job_run(j);
    double one = (now() - t0) / 2;
    long inner = 1;
    if (min_s > 0 && one > 0)
        inner = (long)(min_s / one) + 1;
    if (inner < 1)
        inner = 1;
    if (inner > 1000000)
        inner = 1000000;
    double *t = malloc(sizeof *t * (size_t)reps);
    if (!t)
        return -1;
    for (int r = 0; r < reps; r++) {
        double s = now();
        for (long i = 0; i < inner; i++)
            job_run(j);
        t[r] = (now() - s) / (double)inner;
    }
    double med = median(t, reps);
    free(t);
    return med;
}

/* ---- FLOPs -------------------------------------------------------------- */

/* Multiply-add FLOPs of one sample through a program (matmul and conv ops,
 * forward and backward, 2 per multiply-add). */
static double node_flops(const struct ir_node *n)
{
    double f = 0;
    {
        const int64_t *wd;
        switch (n->op) {
        case IR_MATMUL: /* x (…, K) · w (K, N) */
            f += 2.0 * (double)ir_shape_numel(n->out->shape, 1) * (double)n->in[1]->shape.dim[0];
            break;
        case IR_MATMUL_NT: /* dy (…, N) · wᵀ → (…, K) */
            f += 2.0 * (double)ir_shape_numel(n->out->shape, 1) * (double)n->in[1]->shape.dim[1];
            break;
        case IR_MATMUL_TN: { /* Σ rows xᵀ (K) · dy (N) */
            struct nncc_shape dy = n->in[1]->shape;
            f += 2.0 * (double)ir_shape_numel(n->in[0]->shape, 1) * (double)dy.dim[dy.rank - 1];
            break;
        }
        case IR_CONV2D: /* 2·OH·OW·F·KH·KW·C */
            wd = n->in[1]->shape.dim;
            f += 2.0 * (double)ir_shape_numel(n->out->shape, 1) * (double)(wd[0] * wd[1] * wd[2]);
            break;
        case IR_CONV2D_GRAD_INPUT: /* dy, w → dx: the forward's work */
        case IR_CONV2D_TRANSPOSE:  /* the same computation */
            wd = n->in[1]->shape.dim;
            f += 2.0 * (double)ir_shape_numel(n->in[0]->shape, 1) * (double)(wd[0] * wd[1] * wd[2]);
            break;
        case IR_CONV2D_GRAD_FILTER: /* x, dy → dw */
            wd = n->out->shape.dim;
            f += 2.0 * (double)ir_shape_numel(n->in[1]->shape, 1) * (double)(wd[0] * wd[1] * wd[2]);
            break;
        default:
            break;
        }
    }
    return f;
}

static double program_flops(const struct ir_program *p)
{
    double f = 0;
    for (int i = 0; i < p->n_nodes; i++)
        f += node_flops(p->nodes[i]);
    return f;
}

/* ---- Peak --------------------------------------------------------------- */

static const char peak_src[] =
    "/* nncc bench: fp32 FMA throughput. */\n"
    "#if defined(__AVX512F__)\n"
    "#define VB 64\n#define NACC 16\n"
    "#elif defined(__AVX__)\n"
    "#define VB 32\n#define NACC 12\n"
    "#else\n"
    "#define VB 16\n#define NACC 12\n"
    "#endif\n"
    "typedef float vf __attribute__((vector_size(VB)));\n"
    "#define F(a) a = a * m + c;\n"
    "static float run(long iters, float s)\n"
    "{\n"
    "    vf m, c;\n"
    "    for (int k = 0; k < VB / 4; k++) { m[k] = s; c[k] = 1e-3f * s * (float)(k + 1); }\n"
    "    vf a0 = c, a1 = c + 1, a2 = c + 2, a3 = c + 3, a4 = c + 4, a5 = c + 5, a6 = c + 6,\n"
    "       a7 = c + 7, a8 = c + 8, a9 = c + 9, a10 = c + 10, a11 = c + 11;\n"
    "#if NACC == 16\n"
    "    vf a12 = c + 12, a13 = c + 13, a14 = c + 14, a15 = c + 15;\n"
    "#endif\n"
    "    for (long i = 0; i < iters; i++) {\n"
    "        F(a0) F(a1) F(a2) F(a3) F(a4) F(a5) F(a6) F(a7) F(a8) F(a9) F(a10) F(a11)\n"
    "#if NACC == 16\n"
    "        F(a12) F(a13) F(a14) F(a15)\n"
    "#endif\n"
    "    }\n"
    "    vf t = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11;\n"
    "#if NACC == 16\n"
    "    t += a12 + a13 + a14 + a15;\n"
    "#endif\n"
    "    float r = 0;\n"
    "    for (int k = 0; k < VB / 4; k++) r += t[k];\n"
    "    return r;\n"
    "}\n"
    "/* FLOPs per iteration of one thread. */\n"
    "long nncc_peak_flops_per_iter(void) { return 2L * NACC * (VB / 4); }\n"
    "#ifdef _OPENMP\n"
    "int omp_get_num_threads(void);\n"
    "#endif\n"
    "/* Runs the kernel on `threads` threads; returns how many ran. */\n"
    "int nncc_peak(long iters, int threads, float s, float *sink)\n"
    "{\n"
    "    int used = 1;\n"
    "    float sum = 0;\n"
    "#ifdef _OPENMP\n"
    "#pragma omp parallel num_threads(threads) reduction(+ : sum)\n"
    "    {\n"
    "        sum += run(iters, s);\n"
    "#pragma omp master\n"
    "        used = omp_get_num_threads();\n"
    "    }\n"
    "#else\n"
    "    (void)threads;\n"
    "    sum = run(iters, s);\n"
    "#endif\n"
    "    *sink = sum;\n"
    "    return used;\n"
    "}\n";

struct peak {
    void *handle;
    int (*run)(long, int, float, float *);
    long flops_per_iter;
    bool openmp;
};

/* Compiles the peak kernel (with OpenMP if the compiler has it). */
static bool peak_load(struct peak *pk)
{
    struct nncc_jit jit;
    if (nncc_jit_init(&jit) != NNCC_OK)
        return false;
    const char *flags[] = {"-O2 -march=native -ffp-contract=fast -fopenmp",
                           "-O2 -march=native -ffp-contract=fast"};
#ifdef NNCC_SANITIZED
    int first = 1; /* no OpenMP: LeakSanitizer crashes on libomp's threads (CMakeLists.txt) */
#else
    int first = 0;
#endif
    for (int f = first; f < 2; f++) {
        struct nncc_jit_result res = {0};
        enum nncc_status st = nncc_jit_compile(&jit, peak_src, strlen(peak_src), flags[f], &res);
        free(res.diagnostics);
        if (st != NNCC_OK)
            continue;
        if (!(pk->handle = nncc_jit_load(res.so_path)))
            return false;
        void *r = nncc_jit_symbol(pk->handle, "nncc_peak", res.so_path);
        void *fpi = nncc_jit_symbol(pk->handle, "nncc_peak_flops_per_iter", res.so_path);
        if (!r || !fpi)
            return false;
        long (*fn)(void);
        memcpy(&pk->run, &r, sizeof r);
        memcpy(&fn, &fpi, sizeof fpi);
        pk->flops_per_iter = fn();
        pk->openmp = f == 0;
        return true;
    }
    return false;
}

/* GFLOP/s on `threads` threads: the best of a few runs of ~0.1 s each. */
static double peak_measure(const struct peak *pk, int threads, int *used)
{
    float sink;
    long iters = 100000;
    double t = 0;
    for (;;) { /* calibrate */
        double s = now();
        *used = pk->run(iters, threads, 0.999f, &sink);
        t = now() - s;
        if (t > 0.02 || iters > (1L << 40))
            break;
        iters *= 4;
    }
    iters = (long)((double)iters * 0.1 / t) + 1;
    double best = 0;
    for (int r = 0; r < 5; r++) {
        double s = now();
        *used = pk->run(iters, threads, 0.999f, &sink);
        double g = (double)iters * (double)pk->flops_per_iter * *used / (now() - s) / 1e9;
        if (g > best)
            best = g;
    }
    return best;
}

/* ---- Threads ------------------------------------------------------------ */

/* The OpenMP runtime the generated code loaded, if any: omp_set_num_threads
 * and omp_get_max_threads from the global scope or an object's dependencies. */
static void *omp_symbol(void *handle, const char *name)
{
    void *s = dlsym(RTLD_DEFAULT, name);
    if (!s && handle)
        s = dlsym(handle, name);
    return s;
}

static int omp_threads(void *handle, int set)
{
    void *ss = omp_symbol(handle, "omp_set_num_threads");
    void *gs = omp_symbol(handle, "omp_get_max_threads");
    if (set > 0 && ss) {
        void (*fn)(int);
        memcpy(&fn, &ss, sizeof ss);
        fn(set);
    }
    if (!gs)
        return 0;
    int (*get)(void);
    memcpy(&get, &gs, sizeof gs);
    return get();
}

/* ---- The temporary cache for --cold ------------------------------------- */

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

/* ---- Building ----------------------------------------------------------- */

struct build {
    double wall_s;     /* fit/predict on one row: autodiff, codegen, compiler, load */
    double cc_s;       /* the compiler's own time (0 on cache hits) */
    bool cache_hit;    /* every object came from the cache */
};

/* Makes the model's compiled code: the train/eval steps (a fit on one row)
 * and the inference forward (a predict of one row). */
static enum nncc_status build(nncc_model *m, const struct bench_opts *o, const struct nncc_array *x1,
                              const struct nncc_array *y1, struct build *b)
{
    *b = (struct build){.cache_hit = true};
    double t0 = now();
    if (o->train) {
        struct nncc_shape target = y1->shape;
        target.dim[0] = NNCC_NONE;
        if (nncc_train_ensure_steps(m, target) != NNCC_OK)
            return nncc_last_status();
        b->cc_s += m->train->exec->compile_s;
        b->cache_hit &= m->train->exec->cache_hit;
    }
    if (o->infer) {
        (void)x1;
        if (nncc_predict_ensure_built(m) != NNCC_OK)
            return nncc_last_status();
        b->cc_s += m->exec->compile_s;
        b->cache_hit &= m->exec->cache_hit;
    }
    b->wall_s = now() - t0;
    return NNCC_OK;
}

/* ---- The command -------------------------------------------------------- */

struct results {
    struct build cold, hot;
    double step_s, eval_s, infer_s, lat_s, lat_entry_s;
    double train_flops, eval_flops, infer_flops; /* per sample */
    size_t ws_train, ws_eval, ws_infer;          /* bytes */
    size_t arena_train, arena_train_unplanned;   /* bytes at --batch, kernel scratch excluded */
    double peak1, peakall, peakn; /* 1 thread, all threads, the step's threads */
    int threads, peak_threads;
    /* The training step's slowest kernels, from a profiled build of it. */
    struct kernel_time {
        const struct ir_node *node;
        double s, flops; /* seconds per step, FLOPs per step */
    } prof[10];
    int n_prof;
    double prof_step_s; /* the profiled step's time per call */
    int prof_kernels;   /* kernels in the step */
};

static int cmp_kernel_time(const void *a, const void *b)
{
    double x = ((const struct kernel_time *)a)->s, y = ((const struct kernel_time *)b)->s;
    return (x < y) - (x > y);
}

/* Times each kernel of the training step: builds the step again with timers
 * around every kernel call (cg_entry.profile), runs it `calls` times and
 * keeps the ten slowest. */
static enum nncc_status profile_step(nncc_model *m, struct job *base, int calls, struct results *r)
{
    struct nncc_train_state *t = m->train;
    struct cg_entry e = {.plan = &t->train, .name = "nncc_train_step", .prefix = "t",
                         .profile = true};
    struct nncc_exec *x = nncc_exec_build(&e, 1, m->name);
    if (!x)
        return nncc_last_status();
    const int *count = nncc_jit_symbol(x->handle, "nncc_train_step_prof_count", "profiled step");
    double *secs = nncc_jit_symbol(x->handle, "nncc_train_step_prof_s", "profiled step");
    const int *node = nncc_jit_symbol(x->handle, "nncc_train_step_prof_node", "profiled step");
    if (!count || !secs || !node) {
        nncc_exec_free(x);
        return nncc_last_status();
    }
    struct job j = *base;
    j.e = &x->entry[0];
    for (int i = 0; i < 3; i++)
        job_run(&j);
    memset(secs, 0, sizeof *secs * (size_t)*count);
    double t0 = now();
    for (int i = 0; i < calls; i++)
        job_run(&j);
    r->prof_step_s = (now() - t0) / calls;
    struct kernel_time *all = calloc((size_t)*count + 1, sizeof *all);
    if (!all) {
        nncc_exec_free(x);
        return nncc_fail(NNCC_ERR_NOMEM, "bench: out of memory");
    }
    for (int k = 0; k < *count; k++) {
        all[k].node = t->train.program.nodes[node[k]];
        all[k].s = secs[k] / calls;
        all[k].flops = node_flops(all[k].node) * j.n;
    }
    qsort(all, (size_t)*count, sizeof *all, cmp_kernel_time);
    r->prof_kernels = *count;
    r->n_prof = *count < 10 ? *count : 10;
    memcpy(r->prof, all, sizeof *all * (size_t)r->n_prof);
    free(all);
    nncc_exec_free(x);
    return NNCC_OK;
}

static void json_num(FILE *f, const char *key, double v, bool ok)
{
    if (ok && isfinite(v))
        fprintf(f, ", \"%s\": %.6g", key, v);
    else
        fprintf(f, ", \"%s\": null", key);
}

static void print_json(const struct bench_opts *o, const char *name, const struct results *r)
{
    const char *base = strrchr(o->a.file, '/');
    base = base ? base + 1 : o->a.file;
    char model[256];
    snprintf(model, sizeof model, "%s", base);
    char *dot = strrchr(model, '.');
    if (dot && strcmp(dot, ".c") == 0)
        *dot = '\0';
    for (char *c = model; *c; c++)
        if (*c == '"' || *c == '\\' || (unsigned char)*c < 0x20)
            *c = '_';
    printf("{\"model\": \"%s\", \"name\": \"", model);
    for (const char *c = name; *c; c++)
        putchar(*c == '"' || *c == '\\' || (unsigned char)*c < 0x20 ? '_' : *c);
    printf("\", \"batch\": %d, \"threads\": %d", o->batch, r->threads);
    json_num(stdout, "compile_s", r->cold.wall_s, true);
    json_num(stdout, "compile_cc_s", r->cold.cc_s, true);
    printf(", \"cache_hit\": %s", r->cold.cache_hit ? "true" : "false");
    json_num(stdout, "compile_hot_s", r->hot.wall_s, true);
    bool t = o->train, i = o->infer;
    json_num(stdout, "train_step_ms", r->step_s * 1e3, t);
    json_num(stdout, "eval_step_ms", r->eval_s * 1e3, t);
    json_num(stdout, "train_samples_per_s", o->batch / r->step_s, t);
    json_num(stdout, "infer_samples_per_s", 256 / r->infer_s, i);
    json_num(stdout, "latency_b1_us", r->lat_s * 1e6, i);
    json_num(stdout, "latency_b1_entry_us", r->lat_entry_s * 1e6, i);
    json_num(stdout, "workspace_train_bytes", (double)r->ws_train, t);
    json_num(stdout, "workspace_infer_bytes", (double)r->ws_infer, i);
    json_num(stdout, "arena_bytes", (double)r->arena_train, t);
    json_num(stdout, "arena_unplanned_bytes", (double)r->arena_train_unplanned, t);
    json_num(stdout, "train_flops_per_sample", r->train_flops, t);
    json_num(stdout, "forward_flops_per_sample", r->infer_flops, i);
    json_num(stdout, "peak_gflops_1t", r->peak1, true);
    json_num(stdout, "peak_gflops_all", r->peakall, true);
    json_num(stdout, "peak_gflops", r->peakn, true);
    double sg = r->train_flops * o->batch / r->step_s / 1e9;
    double ig = r->infer_flops * 256 / r->infer_s / 1e9;
    json_num(stdout, "step_gflops", t ? sg : ig, true);
    json_num(stdout, "step_peak_share", (t ? sg : ig) / r->peakn, r->peakn > 0);
    json_num(stdout, "infer_gflops", ig, i);
    printf("}\n");
}

/* Bytes of a plan's value arenas for a batch of n, and with one region
 * per value (no reuse). */
static void arena_bytes(const struct ir_plan *plan, int n, size_t *planned, size_t *unplanned)
{
    const struct ir_memplan *m = &plan->mem;
    *planned = sizeof(float) * (size_t)(m->fixed_size + (int64_t)n * m->per_sample_size);
    *unplanned = sizeof(float) * (size_t)(m->unplanned_fixed + (int64_t)n * m->unplanned_per_sample);
}

static enum nncc_status measure(nncc_model *m, const struct bench_opts *o, struct results *r)
{
    enum nncc_status st = NNCC_OK;
    struct ir_program *p = &m->program;
    int64_t xrow = ir_shape_numel(m->inputs[0]->shape, 1);
    int64_t yrow = ir_shape_numel(m->outputs[0]->shape, 1);
    int nb = o->batch > 256 ? o->batch : 256;
    uint64_t seed = 0x9E3779B97F4A7C15ull;
    float *x = malloc(sizeof *x * (size_t)(xrow * nb));
    float *y = malloc(sizeof *y * (size_t)(yrow * nb));
    float *outb = NULL, *ws = NULL;
    float **outp = NULL;
    if (!x || !y) {
        st = nncc_fail(NNCC_ERR_NOMEM, "bench: out of memory");
        goto done;
    }
    for (int64_t k = 0; k < xrow * nb; k++)
        x[k] = rnd(&seed);
    if (o->train) {
        struct nncc_train_state *t = m->train;
        fill_targets(y, nb, yrow, t->opts.loss, &seed);
        for (int e = 0; e < 2; e++) {
            struct nncc_exec_entry *en = &t->exec->entry[e];
            size_t wf = nncc_exec_ws_floats(en, o->batch);
            (e ? &r->ws_eval : &r->ws_train)[0] = wf * sizeof(float);
            free(ws);
            if (!(ws = malloc(sizeof *ws * (wf + 1)))) {
                st = nncc_fail(NNCC_ERR_NOMEM, "bench: out of memory (workspace)");
                goto done;
            }
            float logs[NNCC_LOGS_MAX];
            float *lp[NNCC_LOGS_MAX];
            for (int k = 0; k < NNCC_LOGS_MAX; k++)
                lp[k] = &logs[k];
            const float *in[2] = {x, y};
            struct job j = {.kind = JOB_STEP, .e = en, .n = o->batch, .in = in, .out = lp, .ws = ws};
            if (e == 0)
                nncc_train_hyper(t, j.h);
            double s = time_job(&j, o->iters, 0.02);
            if (s < 0) {
                st = nncc_fail(NNCC_ERR_NOMEM, "bench: out of memory");
                goto done;
            }
            *(e ? &r->eval_s : &r->step_s) = s;
            if (e == 0) {
                int calls = (int)(0.3 / s) + 1;
                if ((st = profile_step(m, &j, calls > 1000 ? 1000 : calls, r)) != NNCC_OK)
                    goto done;
            }
        }
        r->train_flops = program_flops(&t->train.program);
        r->eval_flops = program_flops(&t->eval.program);
        arena_bytes(&t->train, o->batch, &r->arena_train, &r->arena_train_unplanned);
    }
    if (o->infer) {
        struct nncc_exec_entry *en = &m->exec->entry[0];
        size_t wf = nncc_exec_ws_floats(en, 256);
        r->ws_infer = wf * sizeof(float);
        int64_t orow = 0;
        for (int k = 0; k < p->n_outputs; k++)
            orow += ir_shape_numel(p->outputs[k]->shape, 1);
        free(ws);
        ws = malloc(sizeof *ws * (wf + 1));
        outb = malloc(sizeof *outb * (size_t)(orow * 256));
        outp = malloc(sizeof *outp * (size_t)p->n_outputs);
        if (!ws || !outb || !outp) {
            st = nncc_fail(NNCC_ERR_NOMEM, "bench: out of memory (workspace)");
            goto done;
        }
        for (int k = 0, off = 0; k < p->n_outputs; k++) {
            outp[k] = outb + off * 256;
            off += (int)ir_shape_numel(p->outputs[k]->shape, 1);
        }
        const float *in[1] = {x};
        struct job j = {.kind = JOB_FORWARD, .e = en, .n = 256, .in = in, .out = outp, .ws = ws};
        r->infer_s = time_job(&j, o->iters, 0.02);
        j.n = 1;
        r->lat_entry_s = time_job(&j, o->iters * 20 > 200 ? o->iters * 20 : 200, 0);
        struct job jp = {.kind = JOB_PREDICT, .m = m, .n = 1, .in = in, .n_outputs = p->n_outputs};
        r->lat_s = time_job(&jp, o->iters * 20 > 200 ? o->iters * 20 : 200, 0);
        if (jp.failed) {
            st = nncc_last_status();
            goto done;
        }
        if (r->infer_s < 0 || r->lat_s < 0 || r->lat_entry_s < 0) {
            st = nncc_fail(NNCC_ERR_NOMEM, "bench: out of memory");
            goto done;
        }
        r->infer_flops = program_flops(p);
    }
done:
    free(x);
    free(y);
    free(ws);
    free(outb);
    free(outp);
    return st;
}

static void report(const struct bench_opts *o, const nncc_model *m, const struct results *r,
                   const struct peak *pk)
{
    printf("nncc bench %s (model \"%s\"), batch %d, %d thread%s\n", o->a.file, m->name, o->batch,
           r->threads, r->threads == 1 ? "" : "s");
    printf("compile (first):  %.3f s wall, compiler %.3f s, %s\n", r->cold.wall_s, r->cold.cc_s,
           r->cold.cache_hit ? "cache hit (use --cold for a cold compile)" : "cold (cache miss)");
    printf("compile (again):  %.3f s wall, %s\n", r->hot.wall_s,
           r->hot.cache_hit ? "cache hit" : "cache miss");
    printf("fp32 peak (FMA):  %.1f GFLOP/s on 1 thread, %.1f GFLOP/s on %d thread%s%s\n", r->peak1,
           r->peakall, r->peak_threads, r->peak_threads == 1 ? "" : "s",
           pk->openmp ? "" : " (no OpenMP in the JIT compiler)");
    if (o->train) {
        double sg = r->train_flops * o->batch / r->step_s / 1e9;
        double eg = r->eval_flops * o->batch / r->eval_s / 1e9;
        printf("training step:    %.4f ms at batch %d, %.0f samples/s, %.2f GFLOP/s "
               "(%.1f%% of peak)\n",
               r->step_s * 1e3, o->batch, o->batch / r->step_s, sg, 100 * sg / r->peakn);
        printf("forward (eval):   %.4f ms at batch %d (forward + loss), %.2f GFLOP/s\n",
               r->eval_s * 1e3, o->batch, eg);
        printf("backward (est.):  %.4f ms (training step minus eval step, optimizer included)\n",
               (r->step_s - r->eval_s) * 1e3);
        printf("FLOPs per sample: %.0f training, %.0f forward (matmul and conv only)\n",
               r->train_flops, r->eval_flops);
        printf("workspace:        %zu bytes training step, %zu bytes eval step (batch %d)\n",
               r->ws_train, r->ws_eval, o->batch);
        printf("memory plan:      %zu bytes of values in the training step's arenas, %zu with "
               "one region per value (batch %d)\n",
               r->arena_train, r->arena_train_unplanned, o->batch);
    }
    if (o->infer) {
        double ig = r->infer_flops * 256 / r->infer_s / 1e9;
        printf("inference:        %.0f samples/s at batch 256 (%.4f ms per batch), %.2f GFLOP/s\n",
               256 / r->infer_s, r->infer_s * 1e3, ig);
        printf("batch-1 latency:  %.2f us through nncc_predict_rows, %.2f us the compiled entry alone\n",
               r->lat_s * 1e6, r->lat_entry_s * 1e6);
        printf("workspace:        %zu bytes inference (batch 256)\n", r->ws_infer);
    }
    if (r->n_prof > 0) {
        printf("slowest kernels of the training step (%d kernels; a build with a timer around "
               "each: %.4f ms per step):\n", r->prof_kernels, r->prof_step_s * 1e3);
        printf("  %8s %6s %9s  %s\n", "ms", "share", "GFLOP/s", "kernel");
        for (int k = 0; k < r->n_prof; k++) {
            const struct kernel_time *kt = &r->prof[k];
            char label[200], gf[32] = "-";
            if (kt->flops > 0 && kt->s > 0)
                snprintf(gf, sizeof gf, "%.2f", kt->flops / kt->s / 1e9);
            printf("  %8.4f %5.1f%% %9s  %s %s\n", kt->s * 1e3, 100 * kt->s / r->prof_step_s, gf,
                   ir_op(kt->node->op)->name, ir_node_label(kt->node, label, sizeof label));
        }
    }
}

int cmd_bench(int argc, char **argv)
{
    struct bench_opts o = {0};
    int rc = parse(argc, argv, &o);
    if (rc >= 0)
        return rc;
    char threads_env[16];
    if (o.threads) { /* read by the OpenMP runtime when the generated code loads it */
        snprintf(threads_env, sizeof threads_env, "%d", o.threads);
        setenv("OMP_NUM_THREADS", threads_env, 1);
    }
    char tmp[] = "/tmp/nncc-bench-XXXXXX";
    bool tmp_made = false;
    if (o.cold) {
        if (!mkdtemp(tmp)) {
            fprintf(stderr, "nncc bench: cannot make a temporary cache: %s\n", strerror(errno));
            return EXIT_MODEL;
        }
        tmp_made = true;
        setenv("XDG_CACHE_HOME", tmp, 1);
    }
    void *handle = NULL;
    nncc_model *m = load_model(&o.a, &handle), *m2 = NULL;
    struct nncc_array *x1 = NULL, *y1 = NULL;
    struct peak pk = {0};
    struct results r = {0};
    enum nncc_status st = NNCC_OK;
    rc = EXIT_MODEL;
    if (!m)
        goto done;
    if (m->n_inputs != 1) {
        fprintf(stderr, "nncc bench: %s: model \"%s\" has %d inputs; bench supports one\n",
                o.a.file, m->name, m->n_inputs);
        goto done;
    }
    if (o.train && !m->train) {
        fprintf(stderr,
                "nncc bench: %s: model \"%s\" is not compiled: call nncc_compile() in %s() to "
                "train it, or use --infer\n",
                o.a.file, m->name, o.a.entry);
        goto done;
    }
    struct nncc_shape xs = m->inputs[0]->shape, ys = m->outputs[0]->shape;
    xs.dim[0] = ys.dim[0] = 1;
    if (!(x1 = nncc_array_new(xs)) || !(y1 = nncc_array_new(ys)))
        goto model_error;
    uint64_t seed = 42;
    for (int64_t k = 0; k < nncc_array_size(x1); k++)
        x1->data[k] = rnd(&seed);
    if (o.train)
        fill_targets(y1->data, 1, nncc_array_size(y1), m->train->opts.loss, &seed);
    if ((st = build(m, &o, x1, y1, &r.cold)))
        goto model_error;
    /* A second instance of the same model: everything comes from the cache.
     * A model file (.safetensors, .onnx) is read again; a C file's entry is
     * called again. */
    if (handle) {
        void *sym = nncc_jit_symbol(handle, o.a.entry, o.a.file);
        nncc_model *(*entry)(void);
        memcpy(&entry, &sym, sizeof sym);
        if (!sym || !(m2 = entry()))
            goto model_error;
    } else {
        void *none = NULL;
        if (!(m2 = load_model(&o.a, &none)))
            goto model_error;
    }
    if ((st = build(m2, &o, x1, y1, &r.hot)))
        goto model_error;
    nncc_model_free(m2);
    m2 = NULL;

    void *code = o.train ? m->train->exec->handle : m->exec->handle;
    r.threads = omp_threads(code, o.threads);
    if (r.threads <= 0)
        r.threads = 1; /* no OpenMP runtime: the generated code is serial */
    if (!peak_load(&pk)) {
        fprintf(stderr, "nncc bench: cannot build the peak micro-benchmark: %s\n",
                nncc_last_error());
        goto done;
    }
    int used;
    r.peak1 = peak_measure(&pk, 1, &used);
    int all = o.threads ? o.threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    r.peak_threads = 1;
    r.peakall = all > 1 ? peak_measure(&pk, all, &r.peak_threads) : r.peak1;
    /* The step's share is against the peak at the threads it ran on. */
    r.peakn = r.threads == 1 ? r.peak1 : r.peakall;
    if ((st = measure(m, &o, &r)))
        goto model_error;
    report(&o, m, &r, &pk);
    print_json(&o, m->name, &r);
    rc = 0;
    goto done;
model_error:
    fprintf(stderr, "nncc bench: %s: %s\n", o.a.file, nncc_last_error());
done:
    nncc_array_free(x1);
    nncc_array_free(y1);
    nncc_model_free(m2);
    nncc_model_free(m);
    if (pk.handle)
        nncc_jit_unload(pk.handle);
    if (handle)
        nncc_jit_unload(handle);
    if (tmp_made)
        nftw(tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return rc;
}
