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

#include "ir/ir.h"

enum nncc_status nncc_pipeline_run(struct ir_program *p, const char *model_name);

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

/* Where each value computed into the workspace lives (passes/memplan.c).
 * Arrays have one entry per node, indexed by the node's index in
 * p->nodes (not by graph or tensor ids). */
struct ir_memplan {
    int n;                 /* p->n_nodes */
    int64_t *offset;       /* floats from its arena's start, a multiple of 16; -1: the
                              value needs no region (input, parameter, view, output,
                              or fused away) */
    int64_t *size;         /* floats: per sample in the batched arena, else in all */
    int *first;            /* the node whose kernel writes the value (its own, or
                              its fusion group's head) */
    int *last;             /* the last node reading the value, directly or through
                              views (n: copied out after every kernel) */
    bool *batched_arena;   /* the batched arena (at ws + fixed_size + n·offset), else
                              the fixed one (at ws + offset) */
    int64_t fixed_size;      /* floats, a multiple of 16 */
    int64_t per_sample_size; /* floats per sample, a multiple of 16 */
    int64_t unplanned_fixed, unplanned_per_sample; /* one region per value, no reuse */
};

struct ir_fused;
/* Plans a program's workspace; fused: its fusion groups (nncc_fuse(), as
 * codegen uses them), or NULL for none.  nncc_memplan_free() releases the
 * plan. */
enum nncc_status nncc_memplan(const struct ir_program *p, const struct ir_fused *fused,
                              struct ir_memplan *plan);
void nncc_memplan_free(struct ir_memplan *plan);
/* The plan as text (what NNCC_DUMP=memplan prints). */
void nncc_memplan_print(const struct ir_program *p, const struct ir_memplan *plan, FILE *out);

/* What fusion (passes/fuse.c) decided for one node of a program. */
struct ir_fused {
    const char *rule;          /* the rule that made this node a group's head, or NULL */
    bool absorbed;             /* computed in an earlier node's kernel: no kernel, no value */
    const nncc_tensor *bias;   /* epilogue: + bias[c], c on the last axis */
    bool has_act;              /* epilogue: then the activation `act` */
    enum nncc_activation act;
    bool softmax;              /* epilogue: then a softmax over the last axis */
    bool has_dact;             /* epilogue: times act'(dact_y), computed from the output */
    enum nncc_activation dact;
    const nncc_tensor *dact_y;
    const nncc_tensor *result; /* the value the head's kernel writes (the group's last) */
    const nncc_tensor *result2; /* pool_wgrad: the bias gradient, also written by the head */
    const struct ir_node *wgrad; /* pool_wgrad: the conv2d_grad_filter the head computes
                                    (its value is `result`) from the image gradient it
                                    makes and never stores */
    bool grad_from_y;          /* ACTIVATION_GRAD whose input z was fused away: f' from y */
    const struct ir_node *pool;  /* conv_pool: the max pooling of the head's activations,
                                    computed in its kernel (result: the pooled value,
                                    result2: the pool's argmax, if training keeps it) */
    const struct ir_node *chain[4]; /* chain: the element-wise nodes applied after the
                                       head, in order (n_chain of them) */
    int n_chain;
};

/* One entry per program node (malloc'd; NULL with the error set when out of
 * memory).  NNCC_NO_FUSE=1 turns every rule off; NNCC_NO_FUSE=dact,pool_wgrad
 * (rule names) those rules. */
struct ir_fused *nncc_fuse(const struct ir_program *p);
/* The groups as text (what NNCC_DUMP=fuse prints). */
void nncc_fuse_print(const struct ir_program *p, const struct ir_fused *f, FILE *out);

/* The schedule tiling (passes/tile.c) gives a GEMM-family node. */
enum ir_parallel { IR_PAR_NONE, IR_PAR_ROWS, IR_PAR_IMAGES, IR_PAR_OUT_ROWS, IR_PAR_RUNS };
struct ir_tile {
    enum ir_parallel parallel; /* the axis split over threads */
    int64_t tile_rows;         /* im2col tile rows (conv), a multiple of 6 */
    int64_t min_work;          /* multiply-adds below which one thread runs */
    bool pointwise;            /* 1x1 stride-1 unpadded conv: a plain GEMM */
    bool direct;               /* conv forward with few taps: fields read in place, no columns */
};
/* One entry per program node (malloc'd; NULL with the error set). */
struct ir_tile *nncc_tile(const struct ir_program *p);
/* The schedules as text (what NNCC_DUMP=tile prints). */
void nncc_tile_print(const struct ir_program *p, const struct ir_tile *t, FILE *out);

/* Whether NNCC_DUMP asks for the IR at this point ("all", or the name in a
 * comma-separated list). */
bool nncc_dump_wanted(const char *pass);

#endif
