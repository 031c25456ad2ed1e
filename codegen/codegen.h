/*
 * codegen.h — C emission (codegen/), internal.
 *
 * The driver (emit.c) walks a program, gives every value a buffer (an input
 * slot, a parameter slot, the caller's output, a view of another value, or
 * a region of the workspace) and asks each node's emitter (the op table's
 * last column) for a kernel and its call.  Kernels bake every dimension in
 * as a constant except the batch `n`.  Identifiers in generated C are
 * derived from node numbers only; names from models appear only inside
 * comments, escaped by cg_name() so that no name can end a comment.
 */
#ifndef NNCC_CODEGEN_H
#define NNCC_CODEGEN_H

#include "ir/plan.h"

/* Bumped whenever the generated entry points change. */
#define NNCC_ABI_VERSION 2

/* A growing C source with indentation. */
struct cw {
    char *s;
    size_t len, cap;
    int indent;
    bool oom;
};

void cw_line(struct cw *w, const char *fmt, ...) NNCC_PRINTF(2, 3);
void cw_raw(struct cw *w, const char *fmt, ...) NNCC_PRINTF(2, 3);
void cw_free(struct cw *w);

struct cg {
    struct cw defs;     /* kernels */
    struct cw body;     /* the entry function's body */
    const struct ir_program *p;
    char **buf;         /* per value id: a C expression for its memory */
    const char *prefix; /* kernel names: "<prefix>k<node id>" */
    int *local;         /* node id → its index in the program (names in C) */
    char scratch[96];   /* where kernel scratch space starts (after all values) */
    int64_t scratch_max; /* the most any kernel asked for */
    const struct ir_plan *plan;   /* groups and tiles per program node */
};
/* The node's schedule (ir/plan.h, made by passes/tile.c). */
const struct ir_tile *cg_tile(const struct cg *cg, const struct ir_node *n);

/* ---- Fusion epilogues (codegen/epilogue.c) ---- */
/* The node's fusion group (ir/plan.h); an empty one when the plan has none. */
const struct ir_group *cg_group(const struct cg *cg, const struct ir_node *n);
/* Its epilogue (an empty one unless the group has one). */
const struct ir_epilogue *cg_epilogue(const struct cg *cg, const struct ir_node *n);
/* Where a node's kernel writes: its group's result when it heads one. */
const char *cg_out(const struct cg *cg, const struct ir_node *n);
/* The extra kernel parameters ("bias", "yv") the plan needs, and their arguments. */
void cg_epilogue_params(struct cw *w, const struct ir_epilogue *f);
void cg_epilogue_args(struct cw *w, const struct cg *cg, const struct ir_epilogue *f);
/* bias + activation (or softmax) on `rows` rows of N floats from `ptr`. */
void cg_epilogue_rows(struct cw *w, const struct ir_epilogue *f, const char *ptr, const char *rows,
                      long long N);
/* A GEMM-family kernel: `static void kN(int n, const float *a, const float
 * *b, float *c[, epilogue operands][, float *wp])` and its call; wp is
 * scratch space for B packed once (`packed` floats; 0: no wp). */
void cg_gemm_open(struct cg *cg, const struct ir_node *n, const char *a, const char *b,
                  const char *c, long long packed);
void cg_gemm_close(struct cg *cg, const struct ir_node *n, long long packed);
/* Scratch floats for a k x n B packed whole, for any vector width. */
long long cg_packed_floats(long long k, long long n);
/* One softmax row: y[c] = e^{x[c] − max} / Σ (y may be x), the exps in a
 * vectorizable loop, the sum in one fixed order; the fused epilogue and
 * the softmax kernel share it, so they give the same floats. */
void cg_softmax_row(struct cw *w, const char *x, const char *y, long long N);
/* ptr[i] *= act'(y[i]) for i < count. */
void cg_epilogue_dact(struct cw *w, const struct ir_epilogue *f, const char *ptr, const char *yptr,
                      const char *count);

/* One image's pooling gradient (codegen/pool.c) into `dxb`, with a fused
 * activation gradient; in scope: b, dy, am (max pooling), yv, and the
 * pooling's output as named by y. */
void cg_pool_grad_image(struct cw *w, const struct ir_node *n, const struct ir_epilogue *f,
                        const char *y);
/* One cell of a max-pooling window (codegen/pool.c): for every channel
 * c < C, yp[c] = the larger of yp[c] and src[c] and, with argmax, ap[c] = k
 * where the cell wins (strictly greater: the first maximum stays); yp, and
 * ap and k with argmax, are in scope.  The max pooling kernel and conv_pool
 * share it, so they give the same floats and indices. */
void cg_max_cell(struct cw *w, long long C, const char *src, bool argmax);
/* The pool_wgrad group headed by pooling gradient n (codegen/conv.c). */
void emit_pool_wgrad(struct cg *cg, const struct ir_node *n);
/* The conv_pool group headed by convolution n (codegen/conv.c). */
void emit_conv_pool(struct cg *cg, const struct ir_node *n);
/* SOFTMAX (grad: SOFTMAX_GRAD) along an axis other than the last, or on
 * an unbatched value (codegen/eltwise_onnx.c). */
void cg_softmax_axis(struct cg *cg, const struct ir_node *n, bool grad);
/* CONV2D with groups > 1, its input gradient (and CONV2D_TRANSPOSE with
 * groups > 1) and its filter gradient (codegen/conv_group.c; codegen/conv.c
 * hands them over). */
void emit_conv2d_grouped(struct cg *cg, const struct ir_node *n);
void emit_conv2d_grad_input_grouped(struct cg *cg, const struct ir_node *n);
void emit_conv2d_grad_filter_grouped(struct cg *cg, const struct ir_node *n);
/* The chain group headed by element-wise node n (codegen/chain.c). */
void emit_chain(struct cg *cg, const struct ir_node *n);

/* Scratch space for one kernel call (kernels run one after another, so
 * they share it): returns the C expression of its start. */
const char *cg_scratch(struct cg *cg, int64_t floats);

/* A node's number in generated C: its index in the program, so the source
 * depends only on the program (not on graph ids), and rebuilding the same
 * step hits the JIT cache. */
int cg_id(const struct cg *cg, const struct ir_node *n);
/* The C expression for a value's memory ("in[0]", "p[2]", "t7"). */
const char *cg_buf(const struct cg *cg, const nncc_tensor *t);
/* A model-given name made safe for a C comment (static buffer per call site). */
const char *cg_name(const char *name, char *buf, size_t size);
/* "(n, 28, 28, 1)": a shape with the batch spelled n. */
const char *cg_shape(struct nncc_shape s, char *buf, size_t size);
/* Element count of a value: per sample when batched, else in all. */
int64_t cg_numel(const nncc_tensor *t);
/* Writes the kernel's opening comment: op, layer and shapes. */
void cg_kernel_comment(struct cg *cg, const struct ir_node *n, const char *what);
/* Emits `#pragma omp parallel for` guarded by _OPENMP, with an if() clause
 * so small work stays on one thread. */
void cg_parallel(struct cw *w, const char *work);
/* `#pragma omp simd` for an element-wise loop (no reduction) inside a
 * parallel region: clang passes the region's pointers to the outlined
 * function without their `restrict`, and would otherwise not vectorize
 * (measured: an Adam update 6x slower). */
void cg_simd(struct cw *w);
/* cg_parallel for a single element-wise loop: `parallel for simd`. */
void cg_parallel_simd(struct cw *w, const char *work);
/* The same with the whole if() condition given. */
void cg_parallel_if(struct cw *w, const char *cond);
/* dst[i] = Σ_q part[q·stride + i] for i < count, q = 0 … 7 in order: how
 * kernels that sum eight fixed chunks apart (any thread count) finish. */
void cg_sum_eight(struct cw *w, long long count, const char *part, long long stride,
                  const char *dst);
/* `loop` (a for header ending in "{") over `body` (written at w's indent
 * + 1), closed, on several threads when `cond` holds at run time, else
 * plainly: an OpenMP region whose if() is false still costs about a
 * microsecond in libomp, which batch-1 inference would pay per kernel. */
void cg_parallel_or_serial(struct cw *w, const char *cond, const char *loop, struct cw *body);

/* The GEMM core (codegen/prelude/gemm.c as text, embedded by CMake): written
 * once at the top of a unit whose kernels call nn_gemm. */
extern const char nncc_prelude_gemm_text[];
/* codegen/prelude/math.c (nn_expf), as text: written into units that call it. */
extern const char nncc_prelude_math_text[];
bool cg_needs_gemm(enum ir_op op);

/* One entry point of a generated translation unit, from a finished plan
 * (passes/pipeline.c's nncc_lower):
 *   inference forward: void NAME(int n, const float *const *p, const float *const *in,
 *                                float *const *out, float *ws);
 *   a step (plan->step): void NAME(int n, float *const *p, const float *const *in,
 *                                  float *const *out, float *ws, const double *h);
 * p: parameter (and optimizer slot) values in program order; in: the
 * program's inputs; out: its outputs; ws: n·ws_per_sample + ws_fixed floats;
 * h: step hyper-parameters (see IR_HYPER_*). */
struct cg_entry {
    const struct ir_plan *plan;
    const char *name;      /* the function's name */
    const char *prefix;    /* distinguishes its kernels from other entries' */
    bool profile;          /* time every kernel call (see below) */
    int64_t ws_fixed;      /* out: workspace floats independent of n */
    int64_t ws_per_sample; /* out: workspace floats per sample */
};

/* A profiled entry also exports `double NAME_prof_s[]` (seconds spent in
 * each kernel, accumulated over calls; the caller may zero it), `const int
 * NAME_prof_node[]` (each kernel's node index in the program) and `const
 * int NAME_prof_count`.  `nncc bench` uses it for its per-kernel table. */

/* Generates one translation unit holding the entries (malloc'd source).
 * Each entry also exports `const long NAME_ws_fixed, NAME_ws_per_sample`;
 * the unit exports `const long nncc_abi_version`. */
enum nncc_status nncc_codegen(struct cg_entry *entries, int n_entries, const char *model_name,
                              char **source, size_t *len);

/* The inference forward alone, as entry "nncc_forward". */
enum nncc_status nncc_codegen_forward(const struct ir_plan *plan, const char *model_name,
                                      char **source, size_t *len, int64_t *ws_per_sample);

#endif
