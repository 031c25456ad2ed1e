/*
 * ir.h — the graph IR every stage hands to the next (internal).
 *
 * A graph (struct nncc_graph) owns one arena holding its nodes and values.
 * Every value (struct nncc_tensor, the public symbolic tensor) is produced
 * by exactly one node; inputs and parameters are produced by INPUT and PARAM
 * nodes, so the graph is uniform.  Nodes are appended in topological order
 * (a node's inputs exist before it), and each node has one output.
 *
 * Shapes include the batch dimension, NNCC_NONE when open.  A node's shape
 * is computed by its op's shape rule (ir/ops.c) when the node is added, so a
 * user mistake is reported at the layer call that made it, as Keras does;
 * passes/shapes.c re-runs the same rules over a whole program.
 *
 * The frontend's layers (frontend/) sit above this, and ir/ never calls
 * them: a layer that joins a graph leaves its label for messages there
 * (ir_graph_add_layer), and each IR node records the layer whose call
 * created it, as an opaque handle, with that label.
 */
#ifndef NNCC_IR_H
#define NNCC_IR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "nncc.h"
#include "error.h"

/* ---- Arena ------------------------------------------------------------- */

struct nncc_arena_block;
struct nncc_arena {
    struct nncc_arena_block *head;
    size_t total; /* bytes handed out, for reports */
};

/* Zeroed, 16-byte aligned memory that lives until nncc_arena_free();
 * NULL (with the error set) when memory runs out. */
void *nncc_arena_alloc(struct nncc_arena *a, size_t size);
char *nncc_arena_strdup(struct nncc_arena *a, const char *s);
void nncc_arena_free(struct nncc_arena *a);

/* ---- Ops --------------------------------------------------------------- */

/* Indices into a training step's hyper-parameters h[] (doubles, so step
 * numbers and seeds up to 2^53 are exact). */
enum { IR_HYPER_LR, IR_HYPER_STEP, IR_HYPER_SEED, IR_HYPER_COUNT };

enum ir_op {
#define OP(id, name, arity, view, reduces, shape, ref, emit) IR_##id,
#include "ops.def"
#undef OP
    IR_OP_COUNT
};

struct ir_node;
typedef enum nncc_status (*ir_shape_rule)(struct ir_node *n, struct nncc_shape *out);

/* What every layer knows of an op.  The other columns of ops.def belong to
 * the layers above, which build their own per-op tables from it: the
 * reference kernels (runtime/oracle/) and the emitters (codegen/emit.c). */
struct ir_op_info {
    const char *name;
    int arity; /* -1: variadic */
    bool view;    /* the output is input 0's memory */
    bool reduces; /* the output has no batch dimension */
    ir_shape_rule shape;
};

/* An activation's formula as C text in `v` (ir/activations.def), and its
 * derivative in `v` (the input) and `y` (the output). */
const char *ir_activation_expr(enum nncc_activation act);
const char *ir_activation_deriv(enum nncc_activation act);

const struct ir_op_info *ir_op(enum ir_op op);

/* ---- Values and nodes -------------------------------------------------- */

enum ir_role {
    IR_ROLE_INPUT,      /* fed by the caller */
    IR_ROLE_PARAM,      /* a weight (trainable or not) */
    IR_ROLE_ACTIVATION, /* computed by the graph */
    IR_ROLE_SLOT,       /* optimizer state (a PARAM node that is no weight) */
};

struct nncc_tensor {
    int id;
    enum ir_role role;
    struct nncc_shape shape;
    struct ir_node *producer;
    nncc_graph *g;
    const char *name;  /* params: "dense/kernel"; others: the node's name */
    bool batched;      /* dim 0 is the batch (inputs and what is computed from them) */
    bool trainable;    /* params only */
    float *data;       /* params only: the values, Keras layout (graph arena) */
    enum nncc_initializer init; /* params only: how the values were drawn */
    /* Keras history: the layer call whose output this is (NULL inside a layer). */
    nncc_layer *layer;
    int node_index;
};

/* Attributes; each op reads the fields it documents in ir/ops.c. */
struct ir_attrs {
    enum nncc_activation act;     /* ACTIVATION */
    int kernel[2], stride[2];     /* CONV2D (kernel from weights), pools */
    int dilation[2];              /* CONV2D */
    enum nncc_padding padding;    /* CONV2D, pools */
    int pad[4];                   /* set by the shape rule: top, bottom, left, right */
    int axis;                     /* CONCAT, BATCHNORM; normalised to >= 0 by the rule */
    float rate;                   /* DROPOUT */
    float alpha;                  /* ACTIVATION_ALPHA(_GRAD), act LEAKY_RELU: the slope
                                     below 0; act ELU: the scale of e^x − 1 */
    uint64_t seed;                /* DROPOUT */
    float epsilon, momentum;      /* BATCHNORM */
    bool has_gamma, has_beta;     /* BATCHNORM inputs: x, mean, var, [gamma], [beta] */
    bool keepdims;                /* GLOBAL_AVGPOOL2D */
    struct nncc_shape target;     /* RESHAPE: target without batch, may hold one -1 */
    /* Training ops. */
    struct nncc_shape like;       /* CONV2D_GRAD_*, SUM_TO: the output shape, batch included */
    int64_t offset, size;         /* SLICE: along `axis` */
    bool pool_max;                /* POOL2D_GRAD, GLOBAL_AVGPOOL2D and its gradient: max
                                     (else average) */
    enum nncc_loss loss;          /* LOSS, LOSS_GRAD */
    bool logits;                  /* LOSS, LOSS_GRAD: input 0 holds logits (the stable path) */
    int metric;                   /* METRIC: enum ir_metric */
    struct nncc_optimizer opt;    /* UPDATE: with defaults resolved */
    int n_slots;                  /* UPDATE: inputs (param, grad, slots…, [global norm]) */
    bool global_norm;             /* UPDATE: its last input is the global gradient norm */
    bool bessel;                  /* BN_MOVING: n/(n−1) on the variance (Keras 2's fused 4-D path) */
    /* Element-wise family with ONNX semantics (ir/eltwise.h).  SOFTMAX and
     * LOG_SOFTMAX(_GRAD) read `axis` (0: the last axis; see ir/eltwise.h). */
    int unary;                    /* UNARY(_GRAD): enum ir_unary */
    float p0, p1;                 /* UNARY(_GRAD): the function's parameters (ir/unary.def) */
    int binary;                   /* BINARY, BINARY_GRAD(_CONST): enum ir_binary */
    int which;                    /* BINARY_GRAD(_CONST): the operand (0: a, 1: b) */
    /* Tensor ops (TRANSPOSE, STRIDED_SLICE(_GRAD), PAD, REDUCE(_GRAD), GATHER(_GRAD*));
     * the conventions are in ir/ops.c above each op's shape rule.  They also read
     * `axis` (GATHER), `keepdims` (REDUCE) and `like` (the gradients). */
    int perm[NNCC_MAX_RANK];      /* TRANSPOSE: output axis i is input axis perm[i] */
    int64_t begin[NNCC_MAX_RANK], end[NNCC_MAX_RANK], step[NNCC_MAX_RANK]; /* STRIDED_SLICE */
    int64_t pad_begin[NNCC_MAX_RANK], pad_end[NNCC_MAX_RANK];              /* PAD, >= 0 */
    float pad_value;              /* PAD: the constant */
    int reduce;                   /* REDUCE(_GRAD): enum ir_reduce */
    uint32_t reduce_axes;         /* REDUCE(_GRAD): bit i set = axis i (of the full shape) reduced */
    /* ONNX convolution and pooling options (the conv family). */
    bool explicit_pad;            /* CONV2D(_GRAD_*), CONV2D_TRANSPOSE, pools: pad[] is given
                                     (begin/end per axis, asymmetric allowed), not derived
                                     from `padding` */
    int groups;                   /* CONV2D(_GRAD_*), CONV2D_TRANSPOSE: 0 or 1 ordinary; C_in
                                     and C_out divisible by it (depthwise: groups == C_in) */
    int output_padding[2];        /* CONV2D_TRANSPOSE: extra rows/columns at the end */
    bool ceil_mode;               /* pools (explicit_pad): ceil instead of floor */
    bool count_include_pad;       /* AVGPOOL2D (explicit_pad): pads count in the divisor */
    /* Matrix products (family h4-matmul). */
    bool trans_a, trans_b;        /* BATCH_MATMUL(_SUM): that operand's last two axes swapped
                                     before the product (ONNX Gemm's transA, transB) */
};

/* What a REDUCE node computes. */
enum ir_reduce { IR_REDUCE_SUM, IR_REDUCE_MEAN, IR_REDUCE_MAX, IR_REDUCE_MIN, IR_REDUCE_PROD };

/* What a METRIC node computes (Keras' "accuracy" is resolved from shapes). */
enum ir_metric {
    IR_METRIC_BINARY_ACCURACY,
    IR_METRIC_CATEGORICAL_ACCURACY,
    IR_METRIC_SPARSE_ACCURACY,
    IR_METRIC_MSE,
    IR_METRIC_MAE,
};

struct ir_node {
    int id;
    enum ir_op op;
    int n_in;
    nncc_tensor **in;
    nncc_tensor *out;
    struct ir_attrs a;
    nncc_layer *layer; /* the layer whose call created this node (may be NULL); opaque here */
    const char *label; /* that layer's label for messages: conv2d "c1" (NULL without a layer) */
    const char *name;  /* unique within the graph: "dense/matmul" */
};

/* Grows a malloc'd array to hold `need` elements (error set on failure). */
bool ir_grow_array(void *arrayp, int *cap, int need, size_t elem);
/* A malloc'd formatted string, for names built from names (a fixed buffer
 * could cut them short and make two equal); NULL with the error set when
 * out of memory. */
char *ir_strfmt(const char *fmt, ...) NNCC_PRINTF(1, 2);

/* ---- Graph ------------------------------------------------------------- */

/* A layer that joined a graph, as ir/ sees it: a handle and its label. */
struct ir_graph_layer {
    nncc_layer *layer;
    const char *label; /* conv2d "c1" (graph arena) */
};

struct nncc_graph {
    struct nncc_arena arena;
    struct ir_node **nodes; /* topological (creation) order; malloc'd array */
    int n_nodes, cap_nodes;
    struct ir_graph_layer *layers; /* layers that joined, in order; the frontend frees them */
    int n_layers, cap_layers;
    uint64_t seed;          /* initializers draw from streams keyed by it */
    int n_models;           /* models alive on this graph */
    int n_models_made;      /* for "model", "model_1", … */
};

/* Records that a layer joined g, with the label (copied) its nodes carry in
 * messages.  The frontend may drop the newest records again by lowering
 * n_layers (a layer call that failed). */
enum nncc_status ir_graph_add_layer(nncc_graph *g, nncc_layer *layer, const char *label);

/* Adds a node: copies the inputs, runs the op's shape rule, creates the
 * output value.  NULL (error set, nothing added) when the rule rejects it.
 * A node with a layer takes the label that layer joined g with. */
nncc_tensor *ir_add_node(nncc_graph *g, enum ir_op op, nncc_tensor *const *in, int n_in,
                         const struct ir_attrs *a, nncc_layer *layer, const char *name);
nncc_tensor *ir_add_input(nncc_graph *g, struct nncc_shape shape, const char *name,
                          nncc_layer *layer);
/* A parameter with its values drawn by `init` from the graph's seed. */
nncc_tensor *ir_add_param(nncc_graph *g, struct nncc_shape shape, const char *name,
                          bool trainable, enum nncc_initializer init, nncc_layer *layer);
/* An optimizer slot for a parameter, every value `init`. */
nncc_tensor *ir_add_slot(nncc_graph *g, const nncc_tensor *param, const char *name, float init);
/* Redraws a parameter's values from `seed` (its stream is keyed by its name). */
void ir_param_init(nncc_tensor *t, uint64_t seed);

/* A node's label for messages: its layer's label (`conv2d "c1"`), or the
 * op and node name for nodes of no layer (made by passes). */
const char *ir_node_label(const struct ir_node *n, char *buf, size_t size);

/* ---- Programs: what a model computes ----------------------------------- */

/* The nodes a model needs, in topological order, plus its inputs/outputs.
 * Passes (passes/) transform programs; the arrays are malloc'd. */
struct ir_program {
    nncc_graph *g;
    struct ir_node **nodes;
    int n_nodes;
    nncc_tensor **inputs, **outputs;
    int n_inputs, n_outputs;
};

/* Collects the nodes the outputs depend on. */
enum nncc_status ir_program_init(struct ir_program *p, nncc_graph *g, nncc_tensor *const *inputs,
                                 int n_inputs, nncc_tensor *const *outputs, int n_outputs);
void ir_program_free(struct ir_program *p);

/* Checks the structural invariants (ir/verify.c): topological order, arity,
 * producers, shapes that match the shape rules.  A failure is a bug in nncc
 * or in a pass, reported as NNCC_ERR_GRAPH naming the pass. */
enum nncc_status ir_verify(const struct ir_program *p, const char *after_pass);

/* Text dump and Graphviz DOT of a program (ir/print.c). */
void ir_print(const struct ir_program *p, FILE *out);
/* groups: a plan's fusion groups, drawn as clusters, or NULL. */
struct ir_group;
void ir_print_dot(const struct ir_program *p, const struct ir_group *groups, const char *title,
                  FILE *out);

/* ---- Shape helpers ----------------------------------------------------- */

bool ir_shape_eq(struct nncc_shape a, struct nncc_shape b);
/* A user-given shape as written, numbers only ("(-1, 5)"), unlike
 * nncc_shape_str, which prints negative dims as None. */
char *ir_dims_str(struct nncc_shape s, char *buf, size_t size);
/* The shortest decimal that reads back as v, as a double: 0.999f → 0.999.
 * Keras computes 1 − β from the Python float the user wrote; nncc's
 * hyper-parameters are floats, so this recovers that number. */
double ir_decimal(float v);
/* Product of the dims from `from` on; -1 if one is unknown. */
int64_t ir_shape_numel(struct nncc_shape s, int from);

/* Keras' conv_utils.conv_output_length; pads = TF's SAME split (top/left
 * gets ⌊P/2⌋).  Returns the output size or a value <= 0 when it is empty. */
int64_t ir_conv_out_size(int64_t n, int k, int stride, int dilation, enum nncc_padding pad,
                         int *pad_before, int *pad_after);

#endif
