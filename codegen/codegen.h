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

#include "../ir/ir.h"

/* Bumped whenever the generated entry points change. */
#define NNCC_ABI_VERSION 1

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
    struct cw defs; /* kernels */
    struct cw body; /* the forward function's body */
    const struct ir_program *p;
    char **buf;     /* per value id: a C expression for its memory */
};

/* The C expression for a value's memory ("in[0]", "p[2]", "t7"). */
const char *cg_buf(const struct cg *cg, const nncc_tensor *t);
/* A model-given name made safe for a C comment (static buffer per call site). */
const char *cg_name(const char *name, char *buf, size_t size);
/* "(n, 28, 28, 1)": a shape with the batch spelled n. */
const char *cg_shape(struct nncc_shape s, char *buf, size_t size);
/* Per-sample element count of a value. */
int64_t cg_numel(const nncc_tensor *t);
/* Writes the kernel's opening comment: op, layer and shapes. */
void cg_kernel_comment(struct cg *cg, const struct ir_node *n, const char *what);
/* Emits `#pragma omp parallel for` guarded by _OPENMP, with an if() clause
 * so small work stays on one thread. */
void cg_parallel(struct cw *w, const char *work);

/* The generated translation unit for a program's inference forward:
 *   void nncc_forward(int n, const float *const *p, const float *const *in,
 *                     float *const *out, float *ws);
 * plus constants nncc_ws_per_sample (workspace floats per sample) and
 * nncc_abi_version.  The source is malloc'd. */
enum nncc_status nncc_codegen_forward(const struct ir_program *p, const char *model_name,
                                      char **source, size_t *len, int64_t *ws_per_sample);

#endif
