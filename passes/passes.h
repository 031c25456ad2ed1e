/*
 * passes.h — the pass pipeline and its passes (internal).
 *
 * Each pass transforms a program (struct ir_program) in place and states its
 * contract at the top of its file.  nncc_pipeline_run() runs them in order,
 * verifies the IR after each, and prints it when NNCC_DUMP names the pass
 * (or is "all").
 */
#ifndef NNCC_PASSES_H
#define NNCC_PASSES_H

#include "../ir/ir.h"

enum nncc_status nncc_pipeline_run(struct ir_program *p, const char *model_name);

enum nncc_status pass_shapes(struct ir_program *p);

/* What training needs to know (runtime/train.c fills it in). */
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

/* Whether NNCC_DUMP asks for the IR at this point ("all", or the name in a
 * comma-separated list). */
bool nncc_dump_wanted(const char *pass);

#endif
