/*
 * plan.h — what the passes decided about a program, as typed values.
 *
 * A plan is one program (the inference forward, a training step or an
 * evaluation step) together with, per node, its fusion group (which rule
 * made it, with that rule's operands), its schedule (tiling) and its
 * place in the workspace (memory planning).  passes/pipeline.c makes
 * plans (nncc_lower); codegen/ turns a finished plan into C and never runs
 * a pass.  The passes annotate rather than rewrite: a model's programs
 * share their nodes, so the plan's arrays are indexed by a node's position
 * in the plan's program, never by graph ids.
 *
 * Fusion groups: a group is a head node whose kernel also computes the
 * nodes it absorbed (kind IR_GROUP_MEMBER, which get no kernel and no
 * value) and writes the group's last value, `result`.  Each rule of the
 * fusion table (passes/fuse.c) is one kind below, and each kind carries
 * only its own operands; an emitter switches on the kind.  Adding a rule
 * adds a kind to IR_GROUP_KINDS and its operands to the union.
 */
#ifndef NNCC_IR_PLAN_H
#define NNCC_IR_PLAN_H

#include "ir/ir.h"

/* ---- Fusion groups ----------------------------------------------------- */

/* The fusion table's rules, in the order fuse.c tries them. */
#define IR_GROUP_KINDS(X)                                                                    \
    X(BIAS_ACT, "bias_act")     /* matmul|conv2d + bias [+ activation|softmax] */            \
    X(CONV_POOL, "conv_pool")   /* a bias_act convolution + the max pooling of its output */ \
    X(DACT, "dact")             /* matmul_nt|conv2d_grad_input|pool2d_grad × act'(y) */      \
    X(POOL_WGRAD, "pool_wgrad") /* pool2d_grad [× act'] + the filter and bias gradients */   \
    X(POOL_KEEP, "pool_keep")   /* maxpool2d + its pool_argmax */                           \
    X(CHAIN, "chain")           /* an element-wise head + up to four activations (grads) */

enum ir_group_kind {
    IR_GROUP_NONE,   /* its own kernel; nothing fused */
    IR_GROUP_MEMBER, /* absorbed: computed by its group's head; no kernel, no value */
#define IR_GROUP_ENUM(id, name) IR_GROUP_##id,
    IR_GROUP_KINDS(IR_GROUP_ENUM)
#undef IR_GROUP_ENUM
    IR_GROUP_KIND_COUNT
};

/* "bias_act", …; "none" and "member" for the first two. */
const char *ir_group_kind_name(enum ir_group_kind kind);

/* What a kernel applies to each block of its output while it is in cache:
 * + bias[c] (c on the last axis), then an activation or a row softmax; or,
 * in the backward pass, × act'(y) with y the activation's output. */
struct ir_epilogue {
    const nncc_tensor *bias;
    bool has_act;
    enum nncc_activation act;
    bool softmax;
    bool has_dact;
    enum nncc_activation dact;
    const nncc_tensor *dact_y;
};

#define IR_CHAIN_MAX 4

struct ir_group {
    enum ir_group_kind kind;
    const nncc_tensor *result; /* heads: the value the head's kernel writes */
    int head;                  /* members: the head's index in the program */
    /* Not a group fact but fusion's too: an ACTIVATION_GRAD whose input z
     * was fused away reads the activation's output y instead (f' from y). */
    bool grad_from_y;
    union {
        struct ir_epilogue epi; /* BIAS_ACT, DACT */
        struct {
            struct ir_epilogue epi;
            const struct ir_node *pool;  /* the max pooling computed per tile */
            const nncc_tensor *argmax;   /* its pool_argmax, when training keeps it */
        } conv_pool;
        struct {
            struct ir_epilogue epi;      /* the dact applied first, if any */
            const struct ir_node *wgrad; /* the conv2d_grad_filter computed per image (result) */
            const nncc_tensor *bias_grad; /* the bias_grad, also written, or NULL */
        } pool_wgrad;
        struct {
            const nncc_tensor *argmax;   /* the pool_argmax written with the pooling */
        } pool_keep;
        struct {
            const struct ir_node *node[IR_CHAIN_MAX]; /* applied after the head, in order */
            int n;
        } chain;
    };
};

/* The epilogue of a head (BIAS_ACT, CONV_POOL, DACT, POOL_WGRAD), or an
 * empty one. */
const struct ir_epilogue *ir_group_epilogue(const struct ir_group *g);
/* The values a head's kernel writes: result, and a second one (conv_pool's
 * and pool_keep's argmax, pool_wgrad's bias gradient) or NULL. */
const nncc_tensor *ir_group_second(const struct ir_group *g);

/* ---- Schedules --------------------------------------------------------- */

/* The schedule tiling (passes/tile.c) gives a GEMM-family node. */
enum ir_parallel { IR_PAR_NONE, IR_PAR_ROWS, IR_PAR_IMAGES, IR_PAR_OUT_ROWS, IR_PAR_RUNS };
struct ir_tile {
    enum ir_parallel parallel; /* the axis split over threads */
    int64_t tile_rows;         /* im2col tile rows (conv), a multiple of 6 */
    int64_t min_work;          /* multiply-adds below which one thread runs */
    bool pointwise;            /* 1x1 stride-1 unpadded conv: a plain GEMM */
    bool direct;               /* conv forward with few taps: fields read in place, no columns */
};

/* ---- Memory plan ------------------------------------------------------- */

/* Where each value computed into the workspace lives (passes/memplan.c).
 * One entry per node of the program. */
struct ir_memplan {
    int n;                 /* the program's node count */
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

void ir_memplan_free(struct ir_memplan *m);

/* ---- The plan ---------------------------------------------------------- */

struct ir_plan {
    struct ir_program program; /* owned node and value lists */
    bool step;                 /* a training or evaluation step (reads h[]), not the
                                  inference forward */
    struct ir_group *groups;   /* per node, or NULL before fusion */
    struct ir_tile *tiles;     /* per node, or NULL before tiling */
    struct ir_memplan mem;     /* empty (n == 0) before memory planning */
};

void ir_plan_free(struct ir_plan *plan);

/* The plan as text: the program, then what each pass decided
 * (nncc graph --after, NNCC_DUMP).  Each part prints what is there. */
void ir_plan_print_groups(const struct ir_plan *plan, FILE *out);
void ir_plan_print_tiles(const struct ir_plan *plan, FILE *out);
void ir_plan_print_memory(const struct ir_plan *plan, FILE *out);

#endif
