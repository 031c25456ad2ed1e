/*
 * train.h — training state and helpers shared by runtime/train/train.c,
 * runtime/train/progbar.c, runtime/train/history.c and runtime/train/callbacks.c (internal).
 */
#ifndef NNCC_RUNTIME_TRAIN_H
#define NNCC_RUNTIME_TRAIN_H

#include "frontend/frontend.h"
#include "passes/passes.h"
#include "runtime/jit/exec.h"

#define NNCC_MAX_SLOTS 3

/* What compile() set up and fit() keeps between calls. */
struct nncc_train_state {
    struct nncc_compile_opts opts;     /* optimizer defaults resolved */
    nncc_tensor **params;              /* trainable weights, model order */
    int n_params;
    nncc_tensor **slots;               /* n_slots per parameter */
    int n_slots;
    const char *slot_names[NNCC_MAX_SLOTS];
    struct ir_plan train, eval;        /* lowered for target_shape (passes/pipeline.c) */
    bool built;
    struct nncc_shape target_shape;
    struct nncc_exec *exec;            /* entry 0: train step, entry 1: eval step */
    int64_t iterations;                /* optimizer steps taken */
    int epochs_done;                   /* the epoch after the last completed one */
    float learning_rate;
    bool stop;                         /* stop_training */
    int n_metrics;
    char metric_names[4][40];
};

void nncc_train_state_free(struct nncc_train_state *t);

/* Keras' Progbar (keras/utils/generic_utils.py), verbose 1 or 2. */
struct nncc_progbar {
    FILE *out;
    int target, verbose;
    bool dynamic;                 /* a terminal: redraw in place */
    double start, last_update, after_first_step, epoch_start;
    bool have_first_step;
    int total_width;
};
void nncc_progbar_init(struct nncc_progbar *pb, FILE *out, int target, int verbose);
void nncc_progbar_update(struct nncc_progbar *pb, int current, const struct nncc_logs *logs,
                         bool finalize);
double nncc_now(void);

/* History (runtime/train/history.c). */
nncc_history *nncc_history_new(void);
enum nncc_status nncc_history_append(nncc_history *h, int epoch, const struct nncc_logs *logs);

/* What autodiff needs to build a compiled model's steps for targets of
 * shape `target` (from compile()'s configuration). */
struct nncc_train_spec nncc_train_spec_of(const nncc_model *m, struct nncc_shape target);

/* The targets' shape (batch None) a compiled model trains on when no data
 * says otherwise: the output's, or one class index per row for sparse
 * categorical cross-entropy (nncc compile --train, nncc graph --train). */
struct nncc_shape nncc_train_default_target(const nncc_model *m);

/* The step hyper-parameters h[] (IR_HYPER_*) of the next optimizer step,
 * and of the step after that. */
void nncc_train_hyper(const struct nncc_train_state *t, double h[IR_HYPER_COUNT]);
void nncc_train_hyper_next(double h[IR_HYPER_COUNT]);

/* Frees what the runtime keeps on a model (its release_runtime hook). */
void nncc_runtime_release(nncc_model *m);

/* Builds and compiles the training and evaluation steps for targets of
 * `target`'s shape (batch None), unless built for it already. */
enum nncc_status nncc_train_ensure_steps(nncc_model *m, struct nncc_shape target);

#endif
