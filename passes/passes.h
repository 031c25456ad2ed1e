/*
 * passes.h — the pass pipeline and its passes (internal).
 *
 * nncc_lower() (passes/pipeline.c) is the one driver: every caller that
 * needs a model compiled (fit, evaluate, predict, nncc compile, bench,
 * graph, emit-c) gets its plans from it.  Each pass states its contract
 * at the top of its file; shapes and autodiff make programs, fuse, tile
 * and memplan annotate a plan (ir/plan.h).
 */
#ifndef NNCC_PASSES_H
#define NNCC_PASSES_H

#include "ir/plan.h"

enum nncc_status pass_shapes(struct ir_program *p);

/* What training needs to know (runtime/train/train.c fills it in). */
struct nncc_train_spec {
    enum nncc_loss loss;
    bool from_logits;
    unsigned metrics;                /* enum nncc_metric flags */
    struct nncc_optimizer optimizer; /* defaults resolved */
    struct nncc_shape target_shape;  /* y, batch included (None) */
    uint64_t seed;                   /* keys dropout masks */
    nncc_tensor **params;            /* the trainable parameters */
    int n_params;
    nncc_tensor **slots;             /* n_slots per parameter, in order */
    int n_slots;
    bool gradients_only;             /* no updates: the outputs are the loss, the
                                        metrics, then each parameter's gradient */
};

/* Builds the training and evaluation steps (passes/autodiff.c). */
enum nncc_status nncc_autodiff(const struct ir_program *fwd, const struct nncc_train_spec *spec,
                               struct ir_program *train, struct ir_program *eval);

/* The passes, each on a plan (ir/plan.h), run by nncc_lower in this
 * order; tests call them one by one. */
enum nncc_status pass_fuse(struct ir_plan *plan);    /* passes/fuse.c: groups */
enum nncc_status pass_tile(struct ir_plan *plan);    /* passes/tile.c: tiles */
enum nncc_status pass_memplan(struct ir_plan *plan); /* passes/memplan.c: mem */

/* What to lower a model's program into. */
struct nncc_lower_opts {
    const char *model_name;              /* for dumps */
    const struct nncc_train_spec *train; /* NULL: the inference forward; else the
                                            training and evaluation steps */
    const char *stop_after;              /* NULL, or a pass name: the plans as they are
                                            after it (nncc graph --after) */
};

/* The compiler's path (passes/pipeline.c): shapes → autodiff (training)
 * → fuse → tile → memplan, the program verified after each pass and
 * printed when NNCC_DUMP names it.  plans[0] is the inference forward or
 * the training step, plans[1] the evaluation step (training only); both
 * are zeroed first and the caller frees them with ir_plan_free() (also on
 * failure).  The model's program is not changed (autodiff appends nodes
 * to its graph). */
enum nncc_status nncc_lower(const struct ir_program *model, const struct nncc_lower_opts *o,
                            struct ir_plan plans[2]);

/* The pass names, in order, for --after and NNCC_DUMP ("shapes", …, NULL). */
extern const char *const nncc_pass_names[];

#endif
