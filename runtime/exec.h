/*
 * exec.h — a model's compiled inference code (runtime/exec.c), internal.
 */
#ifndef NNCC_RUNTIME_EXEC_H
#define NNCC_RUNTIME_EXEC_H

#include "../ir/ir.h"

typedef void (*nncc_forward_fn)(int n, const float *const *p, const float *const *in,
                                float *const *out, float *ws);

struct nncc_exec {
    void *handle;            /* the dlopen()ed object */
    nncc_forward_fn forward;
    int64_t ws_per_sample;   /* workspace floats per sample */
    const float **params;    /* parameter values, program order */
    int n_params;
    double compile_s;        /* 0 on a cache hit */
    bool cache_hit;
};

/* Generates, compiles (through the JIT cache) and loads a program's
 * inference forward.  NULL with the error set on failure. */
struct nncc_exec *nncc_exec_build(const struct ir_program *p, const char *model_name);
void nncc_exec_free(struct nncc_exec *e);

#endif
