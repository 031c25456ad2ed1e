/*
 * frontend.h — layers, models and their internals (frontend/, internal).
 *
 * A layer object (struct nncc_layer) is made on its own, with its options
 * checked; it joins a graph when first called, which names it, gives the
 * graph its label for messages and makes it the graph's to free.  Each call
 * is one Keras "node": its input tensors and its output.  Lowering (one file
 * per layer family) appends the call's IR nodes; a call that fails leaves
 * the graph as it was.  Each kind's facts (class, automatic name, inputs,
 * lowering, model-file hooks) are listed once, in layers.def.
 */
#ifndef NNCC_FRONTEND_H
#define NNCC_FRONTEND_H

#include <limits.h>
#include "ir/ir.h"

/* The layer kinds and their facts are listed once, in layers.def. */
enum layer_kind {
#define LAYER(id, cls, base, mn, mx, lower, cw, cr) LAYER_##id,
#include "layers.def"
#undef LAYER
    LAYER_KIND_COUNT
};

typedef nncc_tensor *(*layer_lower_fn)(nncc_layer *l, nncc_tensor *const *in, int n_in);

/* A kind's facts from layers.def (its model-file hooks are serialize.c's). */
struct layer_kind_info {
    const char *cls;  /* "MaxPooling2D" */
    const char *base; /* automatic-name base: "max_pooling2d" */
    int min_inputs, max_inputs;
    layer_lower_fn lower;
};

const struct layer_kind_info *layer_kind(enum layer_kind k);

/* One call of a layer (a Keras inbound node). */
struct layer_call {
    nncc_tensor **in;
    int n_in;
    nncc_tensor *out;
};

#define LAYER_MAX_WEIGHTS 4

/* The fields every layer's options struct starts with (NNCC_LAYER_OPTS). */
struct layer_opts_head {
    NNCC_LAYER_OPTS
};

/* An imported ONNX node's layer: its facts are in struct onnx_node
 * (frontend/onnx.h, nncc_layer.onnx); the options hold only the name. */
struct onnx_layer_opts {
    NNCC_LAYER_OPTS
};

/* Every kind's options; all start with NNCC_LAYER_OPTS (see head). */
union layer_opts {
    struct layer_opts_head head; /* the common initial fields of the others */
    struct nncc_input_opts input;
    struct nncc_dense_opts dense;
    struct nncc_activation_opts activation;
    struct nncc_flatten_opts flatten;
    struct nncc_reshape_opts reshape;
    struct nncc_dropout_opts dropout;
    struct nncc_leaky_relu_opts leaky_relu;
    struct nncc_elu_opts elu;
    struct nncc_conv2d_opts conv2d;
    struct nncc_pool2d_opts pool2d;
    struct nncc_global_pool2d_opts global_pool2d;
    struct nncc_merge_opts merge;
    struct nncc_batchnorm_opts batchnorm;
    struct onnx_layer_opts onnx;
};

struct onnx_node;

struct nncc_layer {
    enum layer_kind kind;
    char *name;                     /* malloc'd; NULL until named */
    bool has_input_shape;
    struct nncc_shape input_shape;  /* declared, without batch */
    union layer_opts o;
    nncc_graph *g;                  /* set when it joins a graph */
    nncc_model *pending_in;         /* held by this unbuilt Sequential until it is built */
    bool built;                     /* weights created */
    nncc_tensor *weights[LAYER_MAX_WEIGHTS]; /* Keras order: kernel, bias / gamma, beta, … */
    int n_weights;
    struct layer_call *calls;
    int n_calls, cap_calls;
    struct onnx_node *onnx;         /* kind ONNX: the node (malloc'd, frontend/onnx.h) */
};

/* Makes a layer of a kind; copies the name. */
nncc_layer *layer_new(enum layer_kind kind, const char *name, struct nncc_shape input_shape);

/* Makes a layer keeping a copy of its (already checked) options struct,
 * which must start with NNCC_LAYER_OPTS and be the kind's member of l->o. */
nncc_layer *layer_make(enum layer_kind kind, const void *opts, size_t size);
/* Frees a layer's memory (the graph calls it for its layers). */
void layer_destroy(nncc_layer *l);
/* Joins a layer to a graph, naming it; fails on a duplicate explicit name. */
enum nncc_status layer_join(nncc_layer *l, nncc_graph *g, const char *auto_name);

/* Makes an InputLayer on g and calls it (nncc_input, and Sequential's
 * implicit input named auto_name). */
nncc_tensor *frontend_input(nncc_graph *g, struct nncc_shape shape, struct nncc_input_opts o,
                            const char *auto_name);

/* Helpers for lowering. */
nncc_tensor *layer_weight(nncc_layer *l, const char *what, struct nncc_shape shape, bool trainable,
                          enum nncc_initializer init);
nncc_tensor *layer_node(nncc_layer *l, enum ir_op op, nncc_tensor *const *in, int n_in,
                        const struct ir_attrs *a, const char *what);
/* Appends the activation (nothing for linear; SOFTMAX for softmax). */
nncc_tensor *layer_activation(nncc_layer *l, nncc_tensor *x, enum nncc_activation act);

/* Option checks shared by the constructors; each fails with a message that
 * starts with the layer's kind and name. */
bool check_activation(const char *who, enum nncc_activation a);
bool check_initializer(const char *who, const char *field, enum nncc_initializer i);
bool check_input_shape(const char *who, struct nncc_shape s, bool given);
const char *layer_who(enum layer_kind kind, const char *name, char *buf, size_t size);
/* Room for a layer_who() label: the longest kind, quotes and a name of
 * NNCC_MAX_NAME bytes, never truncated. */
#define WHO_SIZE (NNCC_MAX_NAME + 48)
/* False, with an error "<who>: <what> \"xxx…\" is N bytes; a name holds at
 * most NNCC_MAX_NAME (256)", when name is longer than NNCC_MAX_NAME. */
bool check_name_length(const char *who, const char *what, const char *name);

/* Lowering functions, one per kind (see layers.def). */
#define LAYER(id, cls, base, mn, mx, lower, cw, cr) \
    nncc_tensor *lower(nncc_layer *l, nncc_tensor *const *in, int n_in);
#include "layers.def"
#undef LAYER

/* ---- Models ------------------------------------------------------------ */

/* One Keras node that belongs to a model's network. */
struct model_node {
    nncc_layer *layer;
    int call;
    int depth;
};

struct nncc_model {
    nncc_graph *g;
    char *name;
    bool sequential;
    bool built;                  /* false: a Sequential with no input shape yet */
    nncc_tensor **inputs, **outputs;
    int n_inputs, n_outputs;
    nncc_layer **layers;         /* Keras' model.layers order */
    int n_layers, cap_layers;
    struct model_node *net;      /* the network's nodes (relevant_nodes) */
    int n_net;
    struct ir_program program;   /* what the model computes; nncc_lower (passes/) compiles it */
    /* What the runtime keeps per model (compiled inference code, the
     * training state), opaque here: the runtime sets them with their
     * release hook, which the frontend calls when the model changes (as in
     * Keras, a changed model needs compile() again) or is freed. */
    struct nncc_exec *exec;
    struct nncc_train_state *train;
    void (*release_runtime)(nncc_model *m);
};

/* Computes layers, depths and the network of a functional model and runs
 * the pass pipeline (frontend/model.c). */
enum nncc_status model_build_network(nncc_model *m);
bool model_has_node(const nncc_model *m, const nncc_layer *l, int call);
/* True when the model can be used (non-NULL and built); else sets the error. */
bool model_check_ready(const nncc_model *m);

/* The architecture as JSON text (malloc'd), and a model rebuilt from it
 * (frontend/serialize.c); path names the file in messages. */
char *model_config_json(const nncc_model *m);
nncc_model *model_from_config(const char *text, size_t len, const char *path);

#endif
