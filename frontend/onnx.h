/*
 * onnx.h — layers made from ONNX nodes (frontend/, internal).
 *
 * The ONNX importer (runtime/io/onnx_import.c) parses a file and, for each
 * node, makes one layer of kind ONNX ("OnnxNode") holding a struct
 * onnx_node: the operator, its attributes by their ONNX names (constant
 * integer inputs such as Reshape's shape or Slice's starts are turned into
 * attributes of the same name, so lowering does not depend on the opset),
 * and which ONNX inputs are graph tensors and which are constants (the
 * layer's weights).  Lowering (onnx_layers.c and one file per family:
 * onnx_nn.c, onnx_math.c, onnx_shape.c) appends the node's IR, so a model
 * file re-creates an imported model from these facts alone.
 *
 * Layout.  ONNX is NCHW, nncc channels-last.  Each ONNX layer records the
 * layout its output is stored in:
 *   PLAIN    IR dims are the ONNX dims;
 *   CL       the ONNX tensor (N, C, S1..Sk) is stored (N, S1..Sk, C);
 *   FLAT_CL  a CL tensor flattened to (N, C·S1·…·Sk) in its stored order:
 *            a Gemm/MatMul with constant weights permutes its weight rows
 *            instead of the data, so a Flatten after a convolution costs no
 *            transpose yet gives exactly ONNX's numbers.
 * Consumers convert (onnx_to_plain, onnx_to_cl) only where they must, and
 * the conversion is a free reshape when C or the spatial size is 1.
 *
 * Batch.  Normally ONNX axis 0 is nncc's batch axis (open at run time).
 * A model whose ops mix axis 0 with the others (Reshape of (2,3,4) to
 * (4,2,3), say) and whose inputs are all static is imported "whole": each
 * ONNX tensor is one sample, ONNX axis a is IR axis a+1.
 */
#ifndef NNCC_FRONTEND_ONNX_H
#define NNCC_FRONTEND_ONNX_H

#include "frontend.h"

enum onnx_op {
#define ONNX_OP(id, type, mn, mx, lower, at) ONNX_OP_##id,
#include "onnx_ops.def"
#undef ONNX_OP
    ONNX_OP_COUNT
};

/* The op type's ONNX name ("Conv"), and the op of a name (-1: none). */
const char *onnx_op_name(enum onnx_op op);
int onnx_op_lookup(const char *type);
void onnx_op_arity(enum onnx_op op, int *min_inputs, int *max_inputs);
/* Whether lowering reads attribute `name` of op (onnx_ops.def). */
bool onnx_op_reads_attr(enum onnx_op op, const char *name);

enum onnx_attr_kind { ONNX_ATTR_INT, ONNX_ATTR_FLOAT, ONNX_ATTR_INTS, ONNX_ATTR_FLOATS,
                      ONNX_ATTR_STRING };

#define ONNX_MAX_ATTRS 16
#define ONNX_MAX_INTS 16  /* pads of a rank-8 tensor */
#define ONNX_MAX_INPUTS 64
#define ONNX_ATTR_NAME 32

struct onnx_attr {
    char name[ONNX_ATTR_NAME];
    enum onnx_attr_kind kind;
    int n;                          /* INTS, FLOATS: the count */
    int64_t ints[ONNX_MAX_INTS];    /* INT: ints[0] */
    float floats[ONNX_MAX_INTS];    /* FLOAT: floats[0] */
    char s[ONNX_ATTR_NAME];         /* STRING */
};

enum onnx_layout { ONNX_PLAIN, ONNX_CL, ONNX_FLAT_CL };

/* Where an ONNX input comes from. */
enum { ONNX_SRC_TENSOR = -1, /* the layer call's next input tensor */
       ONNX_SRC_ABSENT = -2  /* an optional input left out ("") */ };

/* A constant input: a weight of the layer. */
struct onnx_const {
    char name[NNCC_MAX_NAME + 1]; /* the initializer's name */
    struct nncc_shape shape;      /* ONNX shape */
    bool trainable;               /* initializers are; Constant nodes are not */
    const float *values;          /* import only: ONNX-order values (the importer's) */
};

struct onnx_node {
    enum onnx_op op;
    int opset;      /* the default domain's opset the file imports */
    bool whole;     /* ONNX axis a is IR axis a+1 (see above) */
    int n_attrs;
    struct onnx_attr attrs[ONNX_MAX_ATTRS];
    int n_in;
    signed char src[ONNX_MAX_INPUTS]; /* per ONNX input: ONNX_SRC_* or a const index */
    int n_consts;
    struct onnx_const consts[LAYER_MAX_WEIGHTS];
    /* Set by lowering: the output's ONNX shape (dim 0 NNCC_NONE when it is
     * the batch) and how it is stored; for FLAT_CL, the CL tensor's ONNX
     * shape before flattening. */
    struct nncc_shape out_shape;
    enum onnx_layout out_layout;
    struct nncc_shape flat_from;
};

/* Whether m was imported whole (its arrays are single ONNX tensors: an
 * array without the sample axis is one row). */
bool onnx_model_whole(const nncc_model *m);

/* A layer for node (copied); name may be NULL (automatic). */
nncc_layer *onnx_layer_new(const struct onnx_node *node, const char *name);
/* The layer's node (NULL for other kinds). */
const struct onnx_node *onnx_layer_node(const nncc_layer *l);

/* The node as a model file's "config" object, and back (onnx_config.c);
 * a malformed config fails with the reason in err. */
typedef struct json_t json_t;
json_t *onnx_node_config(const struct onnx_node *n);
bool onnx_node_from_config(json_t *cfg, struct onnx_node *n, char *err, size_t size);

/* Attributes, by name, with the default when absent. */
const struct onnx_attr *onnx_attr(const struct onnx_node *n, const char *name);
int64_t onnx_attr_int(const struct onnx_node *n, const char *name, int64_t dflt);
float onnx_attr_float(const struct onnx_node *n, const char *name, float dflt);
const char *onnx_attr_string(const struct onnx_node *n, const char *name, const char *dflt);
/* An INTS attribute into out[] (at most max); its count, or -1 when absent. */
int onnx_attr_ints(const struct onnx_node *n, const char *name, int64_t *out, int max);

/* ---- For the family files (lowering) ------------------------------------ */

/* What lowering knows of one ONNX input tensor. */
struct onnx_value {
    nncc_tensor *t;           /* the IR value */
    struct nncc_shape shape;  /* its ONNX shape (dim 0 NNCC_NONE when batched) */
    enum onnx_layout layout;
    struct nncc_shape flat_from; /* FLAT_CL only */
};

/* The lowering context of one call. */
struct onnx_ctx {
    nncc_layer *l;
    struct onnx_node *n;
    nncc_tensor *const *in;  /* the call's tensors */
    int n_tensors;
    char who[WHO_SIZE + 64]; /* `Conv "conv1"` for messages */
    int n_nodes;             /* IR nodes made so far (for unique names) */
};

/* The ONNX input i: a tensor (value filled, true), a constant (*k its index,
 * false), or absent (*k = -1, false). */
bool onnx_input(struct onnx_ctx *c, int i, struct onnx_value *v, int *k);
/* Input i as a tensor, failing with a message when it is not one. */
bool onnx_tensor_input(struct onnx_ctx *c, int i, struct onnx_value *v);
/* Input i as a tensor stored PLAIN or CL (a FLAT_CL one made PLAIN): what
 * ops with axes take. */
bool onnx_unflat_input(struct onnx_ctx *c, int i, struct onnx_value *v);
/* An IR node of this layer, named "<layer>/<what>" (numbered when repeated). */
nncc_tensor *onnx_node_add(struct onnx_ctx *c, enum ir_op op, nncc_tensor *const *in, int n,
                           const struct ir_attrs *a, const char *what);
/* Layout conversions: v in place; false with the error set. */
bool onnx_to_plain(struct onnx_ctx *c, struct onnx_value *v);
bool onnx_to_cl(struct onnx_ctx *c, struct onnx_value *v);
/* A reshape of v (PLAIN) to the ONNX shape s (dim 0 must be v's batch when
 * batched). */
bool onnx_reshape(struct onnx_ctx *c, struct onnx_value *v, struct nncc_shape s);
/* The IR shape of an ONNX shape stored PLAIN (adds the sample axis when whole). */
struct nncc_shape onnx_ir_shape(const struct onnx_node *n, struct nncc_shape s);
/* Makes constant k a weight of the layer with the IR shape `shape`; when
 * importing, its ONNX values are converted by perm (ONNX value index of
 * each IR element, NULL: same order) — callers build the map. */
nncc_tensor *onnx_weight(struct onnx_ctx *c, int k, struct nncc_shape shape, bool trainable,
                         const int64_t *perm);
/* Sets the output's facts and returns its tensor. */
nncc_tensor *onnx_output(struct onnx_ctx *c, struct onnx_value *v);
/* Fails with "<who>: <message>" (NNCC_ERR_UNSUPPORTED-like status). */
nncc_tensor *onnx_fail(struct onnx_ctx *c, enum nncc_status st, const char *fmt, ...)
    NNCC_PRINTF(3, 4);
int64_t onnx_numel(struct nncc_shape s, int from);
/* A float as an int64: truncated toward zero; NaN and values out of range
 * (a plain cast is undefined there) give 0. */
static inline int64_t onnx_to_int(double v)
{
    return v == v && v > -9.2e18 && v < 9.2e18 ? (int64_t)v : 0;
}

#define ONNX_OP(id, type, mn, mx, lower, at) nncc_tensor *lower(struct onnx_ctx *c);
#include "onnx_ops.def"
#undef ONNX_OP

#endif
