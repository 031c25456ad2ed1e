/*
 * exec.h — a model's compiled code (runtime/jit/exec.c), internal.
 */
#ifndef NNCC_RUNTIME_EXEC_H
#define NNCC_RUNTIME_EXEC_H

#include "ir/ir.h"
#include "codegen/codegen.h"

typedef void (*nncc_forward_fn)(int n, const float *const *p, const float *const *in,
                                float *const *out, float *ws);
typedef void (*nncc_step_fn)(int n, float *const *p, const float *const *in, float *const *out,
                             float *ws, const double *h);

/* One compiled entry point and what calling it needs. */
struct nncc_exec_entry {
    nncc_forward_fn forward; /* CG_FORWARD entries */
    nncc_step_fn step;       /* CG_STEP entries */
    int64_t ws_fixed;        /* workspace floats: ws_fixed + n × ws_per_sample */
    int64_t ws_per_sample;
    float **params;          /* values of the program's PARAM nodes, in order */
    int n_params;
};

struct nncc_exec {
    void *handle; /* the dlopen()ed object */
    struct nncc_exec_entry entry[2];
    int n_entries;
    double compile_s; /* 0 on a cache hit */
    bool cache_hit;
};

/* Generates one translation unit for the entries, compiles it (through the
 * JIT cache) and loads it.  NULL with the error set on failure. */
struct nncc_exec *nncc_exec_build(struct cg_entry *entries, int n_entries, const char *model_name);
void nncc_exec_free(struct nncc_exec *e);

/* Workspace floats an entry needs for batches of up to n samples. */
size_t nncc_exec_ws_floats(const struct nncc_exec_entry *e, int n);

/* Compiles a model's inference forward (runtime/train/predict.c), unless done. */
struct nncc_model;
enum nncc_status nncc_predict_ensure_built(struct nncc_model *m);

#endif
