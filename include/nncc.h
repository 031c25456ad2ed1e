/*
 * nncc.h — the whole public API of nncc, a neural-network graph compiler.
 *
 * Tutorial
 * --------
 * A model is described with a Keras-style functional API.  Building only
 * records a graph (and checks shapes as each layer is called); nothing is
 * computed until the model is compiled.
 *
 *     #include <nncc.h>
 *
 *     nncc_model *model(void)                    // what `nncc summary FILE.c` calls
 *     {
 *         nncc_graph *g = nncc_graph_new();
 *         nncc_tensor *x = nncc_input(g, NNCC_SHAPE(64, 64, 3), .name = "image");
 *         nncc_tensor *h = nncc_conv2d(x, .filters = 16, .kernel_size = {3, 3},
 *                                      .strides = {2, 2}, .padding = NNCC_SAME,
 *                                      .activation = NNCC_RELU);
 *         h = nncc_maxpool2d(h, .pool_size = {2, 2});
 *         h = nncc_flatten(h);
 *         nncc_tensor *y = nncc_dense(h, .units = 4, .activation = NNCC_SOFTMAX);
 *         return nncc_model_new(x, y);           // NULL on error: see nncc_last_error()
 *     }
 *
 *     int main(void)
 *     {
 *         nncc_model *m = model();
 *         if (!m) { fprintf(stderr, "%s\n", nncc_last_error()); return 1; }
 *         nncc_summary(m, stdout);
 *         nncc_model_free(m);                    // frees the graph and its layers too
 *     }
 *
 * Options are passed Keras-style as designated initializers after the
 * positional arguments; a field left out (zero) means the Keras default.
 * Booleans whose Keras default is true are spelled as their negation
 * (`.no_bias = true` for use_bias=False) so that zero stays the default.
 *
 * Layer objects ("syntax 1"): `nncc_dense_layer(.units = 5)` makes a layer that
 * `nncc_call(layer, x)` applies; calling one layer object twice shares its
 * weights.  `nncc_dense(x, .units = 5)` ("syntax 2") makes and calls one.
 * `nncc_sequential()` stacks layer objects; its first layer takes
 * `.input_shape`.
 *
 * Shapes exclude the batch dimension when given (NNCC_SHAPE(28, 28, 1)); shapes
 * reported back include it, with NNCC_NONE (-1) for the open batch size.  All
 * images are NHWC (channels last).
 *
 * Errors: a function that fails returns NULL or a non-zero enum nncc_status,
 * and nncc_last_error() names the layer and the values involved.  A layer
 * function given a NULL tensor (from an earlier failure) returns NULL and keeps
 * the first error, so a chain of calls can be checked once at the end.  The
 * last error is kept per thread, like errno.  The library never exits.
 *
 * Names: layers are named as Keras names them (`dense`, `dense_1`, `conv2d`,
 * `input_1`…) but counted per graph rather than per process, so two models
 * built in one program get the same automatic names.  Explicit duplicate
 * names within one graph are an error.  A name (of a layer, an input or a
 * model) holds 1 to NNCC_MAX_NAME bytes; a longer one is refused when it is
 * given, by the constructor, as the loader would refuse it in a file.
 *
 * Memory: each graph owns one arena, every layer called in it and its tensors;
 * nncc_model_free() frees the graph once no model uses it any more.  So that
 * `return nncc_model_new(x, y);` loses nothing after a failed layer call,
 * nncc_model_new / nncc_model_new_n given a NULL tensor free the graph of
 * the others when no model uses it: do not call nncc_graph_free() on it
 * after that.  Any other failure of nncc_model_new (a disconnected graph, a
 * bad name…) leaves the graph to the caller, usable or to be freed with
 * nncc_graph_free(); so does a call whose every tensor is NULL (nncc_input
 * itself failed), where the graph cannot be found.
 */
#ifndef NNCC_H
#define NNCC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define NNCC_VERSION_STRING "0.1.0"
#define NNCC_MAX_RANK 8
#define NNCC_NONE (-1) /* an unknown dimension (the batch) */

/* ---- Status and errors ------------------------------------------------- */

enum nncc_status {
    NNCC_OK = 0,
    NNCC_ERR_ARG,      /* a bad option or argument value */
    NNCC_ERR_SHAPE,    /* shapes that do not fit the layer */
    NNCC_ERR_GRAPH,    /* a bad graph: disconnected, duplicate names, misuse */
    NNCC_ERR_IO,       /* a file that cannot be read or written */
    NNCC_ERR_FORMAT,   /* a file whose content is malformed */
    NNCC_ERR_COMPILE,  /* the C compiler failed or could not be run */
    NNCC_ERR_NOMEM,    /* out of memory */
    NNCC_ERR_UNSUPPORTED, /* a valid file using what nncc does not support (an ONNX op, …) */
};

/* The message of the calling thread's last error ("" if none). */
const char *nncc_last_error(void);
/* The status of the calling thread's last error (NNCC_OK if none).  Like
 * errno, it is set by a failure and not cleared by a success: it keeps the
 * last failure until the next one or nncc_clear_error().  Check a function's
 * own result (NULL or a status) first, and read this only after a failure. */
enum nncc_status nncc_last_status(void);
/* Forgets the calling thread's last error. */
void nncc_clear_error(void);
/* The longest name, in bytes without the NUL, of a layer, an input or a
 * model (the Names paragraph above). */
#define NNCC_MAX_NAME 256

/* A short name for a status ("shape error", …). */
const char *nncc_status_name(enum nncc_status status);

/* ---- Handles and shapes ------------------------------------------------ */

typedef struct nncc_graph nncc_graph;   /* a graph under construction */
typedef struct nncc_tensor nncc_tensor; /* a symbolic tensor (a value of the graph) */
typedef struct nncc_layer nncc_layer;   /* a layer object */
typedef struct nncc_model nncc_model;   /* a model: inputs → outputs of a graph */
struct nncc_array;                      /* a dense float32 array (see below) */

struct nncc_shape {
    int rank;
    int64_t dim[NNCC_MAX_RANK];
};

/* NNCC_SHAPE(28, 28, 1): a shape literal (rank counted from the arguments). */
#define NNCC_SHAPE(...)                                                              \
    ((struct nncc_shape){.rank = (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), \
                         .dim = {__VA_ARGS__}})

/* Formats a shape as Keras prints it: "(None, 28, 28, 1)".  Returns buf. */
char *nncc_shape_str(struct nncc_shape shape, char *buf, size_t size);

/* ---- Enumerations ------------------------------------------------------ */

enum nncc_activation {
    NNCC_LINEAR = 0, /* Keras' None / "linear" */
    NNCC_RELU,
    NNCC_SIGMOID,
    NNCC_TANH,
    NNCC_SOFTMAX,    /* over the last axis */
    NNCC_ELU,
    NNCC_SELU,
    NNCC_SOFTPLUS,
    NNCC_SOFTSIGN,
    NNCC_HARD_SIGMOID, /* Keras 2: clip(0.2x + 0.5, 0, 1) */
    NNCC_SWISH,
    NNCC_GELU,       /* exact: 0.5x(1 + erf(x/√2)) */
    NNCC_LEAKY_RELU, /* slope 0.2, as keras.activations.leaky_relu */
    NNCC_ACTIVATION_COUNT
};

/* The Keras name of an activation ("relu"); NULL when out of range. */
const char *nncc_activation_name(enum nncc_activation act);

enum nncc_padding { NNCC_VALID = 0, NNCC_SAME };

enum nncc_initializer {
    NNCC_INIT_DEFAULT = 0, /* the layer's Keras default */
    NNCC_GLOROT_UNIFORM,
    NNCC_GLOROT_NORMAL,
    NNCC_HE_NORMAL,
    NNCC_HE_UNIFORM,
    NNCC_LECUN_NORMAL,
    NNCC_LECUN_UNIFORM,
    NNCC_ZEROS,
    NNCC_ONES,
    NNCC_RANDOM_NORMAL,    /* mean 0, stddev 0.05 */
    NNCC_RANDOM_UNIFORM,   /* [-0.05, 0.05] */
    NNCC_TRUNCATED_NORMAL, /* mean 0, stddev 0.05, redrawn beyond 2σ */
    NNCC_INITIALIZER_COUNT
};

/* ---- Graphs and inputs ------------------------------------------------- */

nncc_graph *nncc_graph_new(void);
/* Frees a graph no model holds (a model frees its graph itself). */
enum nncc_status nncc_graph_free(nncc_graph *g);

struct nncc_input_opts {
    int defaults_;      /* never set: lets an empty option list compile */
    const char *name;   /* default input_1, input_2, … */
    int64_t batch_size; /* 0: open (None) */
};
nncc_tensor *nncc_input_(nncc_graph *g, struct nncc_shape shape, struct nncc_input_opts o);
#define nncc_input(g, shape, ...) \
    nncc_input_((g), (shape), (struct nncc_input_opts){.defaults_ = 0, __VA_ARGS__})

/* A tensor's shape, batch included (NNCC_NONE when open). */
struct nncc_shape nncc_tensor_shape(const nncc_tensor *t);
/* The layer whose call produced a tensor (an InputLayer for inputs). */
nncc_layer *nncc_tensor_layer(const nncc_tensor *t);
nncc_graph *nncc_tensor_graph(const nncc_tensor *t);

/* ---- Layers ------------------------------------------------------------ */

/* Fields every layer's options share. */
#define NNCC_LAYER_OPTS                                                  \
    int defaults_;                 /* never set: lets `()` compile */    \
    const char *name;              /* default: Keras' automatic name */  \
    struct nncc_shape input_shape; /* without batch; first Sequential layer */

struct nncc_dense_opts {
    NNCC_LAYER_OPTS
    int units;
    enum nncc_activation activation;
    bool no_bias;
    enum nncc_initializer kernel_initializer; /* default glorot_uniform */
    enum nncc_initializer bias_initializer;   /* default zeros */
};

struct nncc_activation_opts {
    NNCC_LAYER_OPTS
    enum nncc_activation activation;
};

struct nncc_flatten_opts {
    NNCC_LAYER_OPTS
};

struct nncc_reshape_opts {
    NNCC_LAYER_OPTS
    struct nncc_shape target_shape; /* without batch; one -1 allowed */
};

struct nncc_dropout_opts {
    NNCC_LAYER_OPTS
    float rate;    /* fraction dropped in training, in [0, 1) */
    uint64_t seed; /* 0: derived from the model's seed */
};

/* LeakyReLU: x > 0 ? x : alpha·x.  ELU: x > 0 ? x : alpha·(eˣ − 1). */
struct nncc_leaky_relu_opts {
    NNCC_LAYER_OPTS
    float alpha; /* 0 means the Keras default 0.3 */
};

struct nncc_elu_opts {
    NNCC_LAYER_OPTS
    float alpha; /* 0 means the Keras default 1.0 */
};

struct nncc_conv2d_opts {
    NNCC_LAYER_OPTS
    int filters;
    int kernel_size[2];
    int strides[2];       /* default {1, 1} */
    enum nncc_padding padding;
    int dilation_rate[2]; /* default {1, 1} */
    enum nncc_activation activation;
    bool no_bias;
    enum nncc_initializer kernel_initializer;
    enum nncc_initializer bias_initializer;
};

struct nncc_pool2d_opts {
    NNCC_LAYER_OPTS
    int pool_size[2]; /* default {2, 2} */
    int strides[2];   /* default: pool_size */
    enum nncc_padding padding;
};

struct nncc_global_pool2d_opts {
    NNCC_LAYER_OPTS
    bool keepdims;
};

struct nncc_merge_opts {
    NNCC_LAYER_OPTS
    int axis; /* Concatenate only; 0 means the Keras default -1 */
};

struct nncc_batchnorm_opts {
    NNCC_LAYER_OPTS
    int axis;       /* 0 means the Keras default -1 */
    float momentum; /* 0 means 0.99 */
    float epsilon;  /* 0 means 1e-3 */
    bool no_center; /* center=False: no beta */
    bool no_scale;  /* scale=False: no gamma */
};

/* Layer objects (syntax 1).  A layer joins a graph when first called. */
nncc_layer *nncc_dense_layer_(struct nncc_dense_opts o);
nncc_layer *nncc_activation_layer_(struct nncc_activation_opts o);
nncc_layer *nncc_flatten_layer_(struct nncc_flatten_opts o);
nncc_layer *nncc_reshape_layer_(struct nncc_reshape_opts o);
nncc_layer *nncc_dropout_layer_(struct nncc_dropout_opts o);
nncc_layer *nncc_leaky_relu_layer_(struct nncc_leaky_relu_opts o);
nncc_layer *nncc_elu_layer_(struct nncc_elu_opts o);
nncc_layer *nncc_conv2d_layer_(struct nncc_conv2d_opts o);
nncc_layer *nncc_maxpool2d_layer_(struct nncc_pool2d_opts o);
nncc_layer *nncc_avgpool2d_layer_(struct nncc_pool2d_opts o);
nncc_layer *nncc_global_avgpool2d_layer_(struct nncc_global_pool2d_opts o);
nncc_layer *nncc_add_layer_(struct nncc_merge_opts o);
nncc_layer *nncc_concatenate_layer_(struct nncc_merge_opts o);
nncc_layer *nncc_batchnorm_layer_(struct nncc_batchnorm_opts o);

#define NNCC_OPTS_(type, ...) ((struct type){.defaults_ = 0, __VA_ARGS__})
#define nncc_dense_layer(...) nncc_dense_layer_(NNCC_OPTS_(nncc_dense_opts, __VA_ARGS__))
#define nncc_activation_layer(...) \
    nncc_activation_layer_(NNCC_OPTS_(nncc_activation_opts, __VA_ARGS__))
#define nncc_flatten_layer(...) nncc_flatten_layer_(NNCC_OPTS_(nncc_flatten_opts, __VA_ARGS__))
#define nncc_reshape_layer(...) nncc_reshape_layer_(NNCC_OPTS_(nncc_reshape_opts, __VA_ARGS__))
#define nncc_dropout_layer(...) nncc_dropout_layer_(NNCC_OPTS_(nncc_dropout_opts, __VA_ARGS__))
#define nncc_leaky_relu_layer(...) \
    nncc_leaky_relu_layer_(NNCC_OPTS_(nncc_leaky_relu_opts, __VA_ARGS__))
#define nncc_elu_layer(...) nncc_elu_layer_(NNCC_OPTS_(nncc_elu_opts, __VA_ARGS__))
#define nncc_conv2d_layer(...) nncc_conv2d_layer_(NNCC_OPTS_(nncc_conv2d_opts, __VA_ARGS__))
#define nncc_maxpool2d_layer(...) nncc_maxpool2d_layer_(NNCC_OPTS_(nncc_pool2d_opts, __VA_ARGS__))
#define nncc_avgpool2d_layer(...) nncc_avgpool2d_layer_(NNCC_OPTS_(nncc_pool2d_opts, __VA_ARGS__))
#define nncc_global_avgpool2d_layer(...) \
    nncc_global_avgpool2d_layer_(NNCC_OPTS_(nncc_global_pool2d_opts, __VA_ARGS__))
#define nncc_add_layer(...) nncc_add_layer_(NNCC_OPTS_(nncc_merge_opts, __VA_ARGS__))
#define nncc_concatenate_layer(...) \
    nncc_concatenate_layer_(NNCC_OPTS_(nncc_merge_opts, __VA_ARGS__))
#define nncc_batchnorm_layer(...) \
    nncc_batchnorm_layer_(NNCC_OPTS_(nncc_batchnorm_opts, __VA_ARGS__))

/* Calls a layer on one tensor, or on n tensors (Add, Concatenate).  Returns
 * the output tensor, or NULL with the error set; a failed call changes
 * nothing (a layer that had never been called stays the caller's). */
nncc_tensor *nncc_call(nncc_layer *layer, nncc_tensor *x);
nncc_tensor *nncc_call_n(nncc_layer *layer, nncc_tensor *const *xs, int n);
/* The same, but the layer is freed when the call fails and the layer had
 * never been called: what the one-call forms below use. */
nncc_tensor *nncc_apply_n(nncc_layer *layer, nncc_tensor *const *xs, int n);

/* The one-call forms (syntax 2): make a layer and call it. */
#define nncc_dense(x, ...) nncc_apply_n(nncc_dense_layer(__VA_ARGS__), (nncc_tensor *[]){(x)}, 1)
#define nncc_activation(x, ...) \
    nncc_apply_n(nncc_activation_layer(__VA_ARGS__), (nncc_tensor *[]){(x)}, 1)
#define nncc_flatten(x, ...) nncc_apply_n(nncc_flatten_layer(__VA_ARGS__), (nncc_tensor *[]){(x)}, 1)
#define nncc_reshape(x, ...) nncc_apply_n(nncc_reshape_layer(__VA_ARGS__), (nncc_tensor *[]){(x)}, 1)
#define nncc_dropout(x, ...) nncc_apply_n(nncc_dropout_layer(__VA_ARGS__), (nncc_tensor *[]){(x)}, 1)
#define nncc_leaky_relu(x, ...) \
    nncc_apply_n(nncc_leaky_relu_layer(__VA_ARGS__), (nncc_tensor *[]){(x)}, 1)
#define nncc_elu(x, ...) nncc_apply_n(nncc_elu_layer(__VA_ARGS__), (nncc_tensor *[]){(x)}, 1)
#define nncc_conv2d(x, ...) nncc_apply_n(nncc_conv2d_layer(__VA_ARGS__), (nncc_tensor *[]){(x)}, 1)
#define nncc_maxpool2d(x, ...) \
    nncc_apply_n(nncc_maxpool2d_layer(__VA_ARGS__), (nncc_tensor *[]){(x)}, 1)
#define nncc_avgpool2d(x, ...) \
    nncc_apply_n(nncc_avgpool2d_layer(__VA_ARGS__), (nncc_tensor *[]){(x)}, 1)
#define nncc_global_avgpool2d(x, ...) \
    nncc_apply_n(nncc_global_avgpool2d_layer(__VA_ARGS__), (nncc_tensor *[]){(x)}, 1)
#define nncc_batchnorm(x, ...) \
    nncc_apply_n(nncc_batchnorm_layer(__VA_ARGS__), (nncc_tensor *[]){(x)}, 1)
/* Lists of tensors or layers are an array and a count; NNCC_TENSORS(a, b)
 * and NNCC_LAYERS(l1, l2, l3) write both:
 *     nncc_add(NNCC_TENSORS(a, b), .name = "sum")
 *     nncc_concatenate(branches, 3, .axis = -1)      (an array and its count) */
#define NNCC_COUNT_(type, ...) ((int)(sizeof((type[]){__VA_ARGS__}) / sizeof(type)))
#define NNCC_TENSORS(...) ((nncc_tensor *[]){__VA_ARGS__}), NNCC_COUNT_(nncc_tensor *, __VA_ARGS__)
#define NNCC_LAYERS(...) ((nncc_layer *[]){__VA_ARGS__}), NNCC_COUNT_(nncc_layer *, __VA_ARGS__)
/* The extra level lets NNCC_TENSORS() expand into the array and its count. */
#define nncc_add(...) nncc_add__(__VA_ARGS__)
#define nncc_add__(xs, n, ...) nncc_apply_n(nncc_add_layer(__VA_ARGS__), (xs), (n))
#define nncc_concatenate(...) nncc_concatenate__(__VA_ARGS__)
#define nncc_concatenate__(xs, n, ...) \
    nncc_apply_n(nncc_concatenate_layer(__VA_ARGS__), (xs), (n))

/* Frees a layer object that never joined a graph (others belong to theirs). */
void nncc_layer_free(nncc_layer *layer);

/* What every layer answers.  A layer gains one node per call. */
const char *nncc_layer_name(const nncc_layer *layer);
const char *nncc_layer_type(const nncc_layer *layer); /* Keras class: "Dense" */
int nncc_layer_num_nodes(const nncc_layer *layer);
int64_t nncc_layer_count_params(const nncc_layer *layer);
int64_t nncc_layer_count_trainable_params(const nncc_layer *layer);
/* Node 0's first input and output; NULL + error if the layer was never called. */
nncc_tensor *nncc_layer_input(const nncc_layer *layer);
nncc_tensor *nncc_layer_output(const nncc_layer *layer);
/* Input i of node `node` (Add and Concatenate take several). */
nncc_tensor *nncc_layer_input_at(const nncc_layer *layer, int node, int i);
nncc_tensor *nncc_layer_output_at(const nncc_layer *layer, int node);
int nncc_layer_num_inputs_at(const nncc_layer *layer, int node);
/* The shape of the first input / the output, as Keras' layer.input_shape:
 * an error (NNCC_ERR_GRAPH) when never called or when nodes disagree. */
enum nncc_status nncc_layer_input_shape(const nncc_layer *layer, struct nncc_shape *shape);
enum nncc_status nncc_layer_output_shape(const nncc_layer *layer, struct nncc_shape *shape);

/* ---- Weights ----------------------------------------------------------- */

/* Weights are drawn by their initializers when a layer is first called,
 * from a stream keyed by the graph's seed and the weight's name, so a seed
 * gives the same weights on every machine.  The default seed is 0. */
void nncc_graph_set_seed(nncc_graph *g, uint64_t seed);

/* A layer's weights in Keras' order and layouts: Dense kernel (in, units) and
 * bias (units); Conv2D kernel (kh, kw, in, filters) and bias (filters);
 * BatchNormalization gamma, beta, moving_mean, moving_variance. */
int nncc_layer_num_weights(const nncc_layer *layer);
const char *nncc_layer_weight_name(const nncc_layer *layer, int i); /* "dense/kernel" */
struct nncc_shape nncc_layer_weight_shape(const nncc_layer *layer, int i);
/* Copies weight i out / in; count must equal its number of values. */
enum nncc_status nncc_get_weights(const nncc_layer *layer, int i, float *out, int64_t count);
enum nncc_status nncc_set_weights(nncc_layer *layer, int i, const float *values, int64_t count);

/* Every weight of a model's layers in one safetensors file: one F32 tensor
 * per weight, named as nncc_layer_weight_name() ("dense/kernel"), in Keras'
 * layouts, with "__metadata__": {"format": "nncc-weights", …}.  The file is
 * replaced atomically (a temporary file in the same folder, then rename),
 * as are those of nncc_save and nncc_save_npy: a file saved over keeps its
 * permissions (a new one gets 0666 & ~umask, as fopen); a symbolic link at
 * the path is written through to its target and stays a link; a save killed
 * midway may leave a hidden ".nncc-….tmp" file beside the target, which the
 * next save of the same path removes.
 * Loading matches tensors by name and checks every shape; a missing or extra
 * tensor, a wrong shape or a malformed file is an error naming the file and
 * the tensor, and leaves the model's weights unchanged. */
enum nncc_status nncc_save_weights(const nncc_model *m, const char *path);
enum nncc_status nncc_load_weights(nncc_model *m, const char *path);

/* ---- Saving and loading whole models ---------------------------------- */

/* Saves the whole model in one safetensors file: every weight as
 * "<layer>/<weight>" and every optimizer slot as
 * "optimizer/<layer>/<weight>/<slot>" (Keras layouts, F32), and in
 * __metadata__ the architecture, the compile configuration, the training
 * state (epochs done, optimizer iterations, learning rate) and a checksum
 * of the tensor bytes.  Atomic: a crash never leaves a partial file.
 * By the path's extension it writes a Keras file instead, with the same
 * architecture, weights, compile configuration and optimizer state:
 * "m.keras" as Keras 3 writes it (keras.models.load_model in Keras 3 loads
 * it and continues training), "m.h5" (or .hdf5) as tf-keras 2.15 writes it
 * (tf-keras loads it and continues training; Keras 3 loads its
 * architecture and weights).  Not for models with imported ONNX nodes. */
enum nncc_status nncc_save(const nncc_model *model, const char *path);
/* Rebuilds a model saved by nncc_save: architecture, weights and, when the
 * file holds them, the compile configuration and optimizer state, so
 * training resumes where it stopped (pass .initial_epoch =
 * nncc_model_epochs_done(m) to fit).  NULL with the error set on a bad file.
 * Also reads models saved by Keras' model.save: "m.h5" (tf-keras 2.x, or
 * Keras 3's legacy HDF5) and "m.keras" (tf-keras 2.13+, Keras 3), with the
 * optimizer state (iterations, learning rate, slots) when Keras saved the
 * model compiled, so fit continues Keras' run.  Anything the model uses
 * that nncc lacks (a layer class, a regularizer, a dtype other than float32,
 * a frozen layer, an optimizer, loss or metric) is NNCC_ERR_UNSUPPORTED
 * naming the layer, its class and the field. */
nncc_model *nncc_load(const char *path);
/* Epochs a compiled model has completed (restored by nncc_load). */
int nncc_model_epochs_done(const nncc_model *model);

/* ---- Models ------------------------------------------------------------ */

struct nncc_model_opts {
    int defaults_;
    const char *name; /* default "model" ("model_1", … on a shared graph) */
};
nncc_model *nncc_model_new_n_(nncc_tensor *const *inputs, int n_inputs,
                              nncc_tensor *const *outputs, int n_outputs,
                              struct nncc_model_opts o);
/* nncc_model_new_n(NNCC_TENSORS(x1, x2), NNCC_TENSORS(y), .name = "m") */
#define nncc_model_new_n(...) nncc_model_new_n__(__VA_ARGS__)
#define nncc_model_new_n__(ins, n_in, outs, n_out, ...) \
    nncc_model_new_n_((ins), (n_in), (outs), (n_out), NNCC_OPTS_(nncc_model_opts, __VA_ARGS__))
/* nncc_model_new(x, y): NULL with the error set; a NULL x or y (an earlier
 * layer call failed) frees the graph when no model uses it (Memory, top). */
#define nncc_model_new(x, y, ...) \
    nncc_model_new_n_((nncc_tensor *[]){(x)}, 1, (nncc_tensor *[]){(y)}, 1, \
                      NNCC_OPTS_(nncc_model_opts, __VA_ARGS__))

/* A Sequential model from n layer objects (n may be 0); the first layer
 * takes .input_shape.  On error every layer not yet in a graph is freed. */
nncc_model *nncc_sequential_(nncc_layer *const *layers, int n, struct nncc_model_opts o);
/* nncc_sequential(NNCC_LAYERS(nncc_dense_layer(…), …), .name = "s") */
#define nncc_sequential(...) nncc_sequential__(__VA_ARGS__)
#define nncc_sequential__(layers, n, ...) \
    nncc_sequential_((layers), (n), NNCC_OPTS_(nncc_model_opts, __VA_ARGS__))
/* Appends a layer to a Sequential model (the layer is freed on error). */
enum nncc_status nncc_sequential_add(nncc_model *model, nncc_layer *layer);

void nncc_model_free(nncc_model *model);

const char *nncc_model_name(const nncc_model *model);
/* Layers in Keras' model.layers order (a Sequential omits its InputLayer). */
int nncc_model_num_layers(const nncc_model *model);
nncc_layer *nncc_model_layer(const nncc_model *model, int i);
nncc_layer *nncc_model_get_layer(const nncc_model *model, const char *name);
int nncc_model_num_inputs(const nncc_model *model);
int nncc_model_num_outputs(const nncc_model *model);
nncc_tensor *nncc_model_input(const nncc_model *model, int i);
nncc_tensor *nncc_model_output(const nncc_model *model, int i);
int64_t nncc_model_count_params(const nncc_model *model);
/* Redraws every weight of the model's layers from `seed`. */
enum nncc_status nncc_model_init_weights(nncc_model *model, uint64_t seed);
int64_t nncc_model_count_trainable_params(const nncc_model *model);

/* ---- ONNX models ------------------------------------------------------- */

struct nncc_onnx_opts {
    int defaults_;
    /* Shapes for the graph's inputs, in order, ONNX layout, batch included:
     * a dimension > 0 replaces the file's (fixing a dynamic one), others
     * keep it.  Dynamic dimensions other than the first must be fixed. */
    const struct nncc_shape *input_shapes;
    int n_input_shapes;
    /* Graph inputs to bind to fixed values (ONNX layout, their full shape):
     * they become constants of the model, as if they were initializers —
     * for inputs nncc needs constant (a convolution's weights, a Reshape's
     * shape) that a file leaves as inputs.  They are not trained. */
    const char *const *constant_names;
    const struct nncc_array *const *constant_values;
    int n_constants;
};
/* An ONNX model (opsets 1–17) as an nncc model: its initializers are the
 * weights (trainable, so nncc_fit fine-tunes them), its inputs and outputs
 * keep the file's shapes and layout (NCHW images stay NCHW), axis 0 is the
 * batch axis.  A model whose ops mix axis 0 with the others and whose inputs
 * are static is imported "whole": its inputs then have one more leading
 * axis, and each ONNX tensor is one row.  Anything unsupported fails
 * (NNCC_ERR_UNSUPPORTED) naming the node, its op type and what is missing.
 * nncc_save keeps the result like any model. */
nncc_model *nncc_load_onnx_(const char *path, struct nncc_onnx_opts o);
#define nncc_load_onnx(path, ...) \
    nncc_load_onnx_((path), NNCC_OPTS_(nncc_onnx_opts, __VA_ARGS__))
/* A serialized ONNX TensorProto (the test data's input_0.pb) as an array
 * (any numeric type, converted to float; a scalar becomes shape (1)). */
struct nncc_array *nncc_load_onnx_tensor(const char *path);
/* The same, with the tensor's name (as ONNX's test data name the input it
 * feeds) copied into name (size bytes, "" when it has none). */
struct nncc_array *nncc_load_onnx_tensor_named(const char *path, char *name, size_t size);

struct nncc_export_onnx_opts {
    int defaults_;
    int opset; /* the default domain's opset: 0 means 13; 13 to 17 */
};
/* Writes the model at inference as an ONNX file (atomically): IR version 8
 * (Debian's onnx 1.12 reads it), opset 13 unless o.opset says otherwise.
 * The graph keeps nncc's layout at its boundary: an image input
 * (N, H, W, C) stays NHWC, as nncc's own API takes it (convolutions are
 * transposed to NCHW inside the graph, once per chain); axis 0 of every
 * input and output is the dynamic batch dimension "N".  Inference only:
 * dropout is Identity, batch normalization uses the moving statistics.
 * Initializers are named by the weights ("dense/kernel"), values by the
 * IR nodes.  NNCC_ERR_UNSUPPORTED names a node with no ONNX form;
 * NNCC_ERR_ARG an opset out of range. */
enum nncc_status nncc_export_onnx_(const nncc_model *m, const char *path,
                                   struct nncc_export_onnx_opts o);
#define nncc_export_onnx(m, path, ...) \
    nncc_export_onnx_((m), (path), NNCC_OPTS_(nncc_export_onnx_opts, __VA_ARGS__))

/* ---- Inference --------------------------------------------------------- */

struct nncc_predict_opts {
    int defaults_;
    int batch_size; /* 0 means 32; the last batch may be smaller */
    bool reference; /* run the reference interpreter instead (slow; for checking) */
};
/* Runs a single-input, single-output model in inference mode on the rows
 * of x and returns the outputs as a new array (n, …), n = x's first
 * dimension.  x's shape is checked against the model's input: its rank and
 * every dimension after the first must be the input's (a mismatch is an
 * NNCC_ERR_SHAPE naming the model, the input and both shapes).  The first
 * call compiles the model's code (cached on disk, so later processes reuse
 * it); NNCC_VERBOSE=1 reports compile time and cache hits.  NULL with the
 * error set on failure. */
struct nncc_array *nncc_predict_(nncc_model *model, const struct nncc_array *x,
                                 struct nncc_predict_opts o);
#define nncc_predict(model, x, ...) \
    nncc_predict_((model), (x), NNCC_OPTS_(nncc_predict_opts, __VA_ARGS__))
/* Any number of inputs and outputs: xs[i] is the array for input i (checked
 * as nncc_predict checks x; all with the same number of rows); outs[k]
 * receives a new array for output k. */
enum nncc_status nncc_predict_n_(nncc_model *model, const struct nncc_array *const *xs,
                                 struct nncc_array **outs, struct nncc_predict_opts o);
#define nncc_predict_n(model, xs, outs, ...) \
    nncc_predict_n_((model), (xs), (outs), NNCC_OPTS_(nncc_predict_opts, __VA_ARGS__))
/* Raw-pointer forms, unchecked: x must hold n_rows × (the input's per-row
 * size: the product of its dimensions after the batch) floats, and is read
 * that far whatever its real length; nothing can check it.  Prefer
 * nncc_predict unless the rows are not in an nncc_array. */
struct nncc_array *nncc_predict_rows_(nncc_model *model, const float *x, int64_t n_rows,
                                      struct nncc_predict_opts o);
#define nncc_predict_rows(model, x, n_rows, ...) \
    nncc_predict_rows_((model), (x), (n_rows), NNCC_OPTS_(nncc_predict_opts, __VA_ARGS__))
/* xs[i] holds n_rows rows of input i (n_rows × its per-row size floats). */
enum nncc_status nncc_predict_rows_n_(nncc_model *model, const float *const *xs, int64_t n_rows,
                                      struct nncc_array **outs, struct nncc_predict_opts o);
#define nncc_predict_rows_n(model, xs, n_rows, outs, ...)                 \
    nncc_predict_rows_n_((model), (xs), (n_rows), (outs),                 \
                         NNCC_OPTS_(nncc_predict_opts, __VA_ARGS__))

/* The C source nncc generates for the model's inference (malloc'd; free()
 * it), as `nncc emit-c` prints it. */
char *nncc_model_emit_c(const nncc_model *model);

/* ---- Training: compile ------------------------------------------------ */

enum nncc_optimizer_kind {
    NNCC_OPTIMIZER_DEFAULT = 0, /* Keras' compile() default: rmsprop */
    NNCC_SGD,
    NNCC_ADAM,
    NNCC_ADAGRAD,
    NNCC_RMSPROP,
};

/* An optimizer with Keras 2.15's rules; a zero field means its default:
 * SGD lr 0.01 momentum 0; Adam lr 1e-3 β1 0.9 β2 0.999 ε 1e-7; Adagrad lr
 * 1e-3 initial_accumulator_value 0.1 ε 1e-7; RMSprop lr 1e-3 ρ 0.9 ε 1e-7.
 * At most one of clipnorm, clipvalue, global_clipnorm. */
struct nncc_optimizer {
    enum nncc_optimizer_kind kind;
    float learning_rate;
    float momentum;                  /* SGD, RMSprop */
    bool nesterov;                   /* SGD */
    float beta_1, beta_2;            /* Adam */
    bool amsgrad;                    /* Adam */
    float rho;                       /* RMSprop */
    bool centered;                   /* RMSprop */
    float initial_accumulator_value; /* Adagrad */
    float epsilon;
    float clipnorm, clipvalue, global_clipnorm;
};
#define nncc_sgd(...) ((struct nncc_optimizer){.kind = NNCC_SGD, __VA_ARGS__})
#define nncc_adam(...) ((struct nncc_optimizer){.kind = NNCC_ADAM, __VA_ARGS__})
#define nncc_adagrad(...) ((struct nncc_optimizer){.kind = NNCC_ADAGRAD, __VA_ARGS__})
#define nncc_rmsprop(...) ((struct nncc_optimizer){.kind = NNCC_RMSPROP, __VA_ARGS__})

enum nncc_loss {
    NNCC_LOSS_NONE = 0,
    NNCC_MEAN_SQUARED_ERROR,
    NNCC_MEAN_ABSOLUTE_ERROR,
    NNCC_BINARY_CROSSENTROPY,
    NNCC_CATEGORICAL_CROSSENTROPY,
    NNCC_SPARSE_CATEGORICAL_CROSSENTROPY,
};

/* Metrics, combined with |.  NNCC_ACCURACY is resolved from shapes as
 * Keras' "accuracy" is (binary, categorical or sparse). */
enum nncc_metric {
    NNCC_ACCURACY = 1 << 0,
    NNCC_METRIC_MSE = 1 << 1, /* history key "mean_squared_error" */
    NNCC_METRIC_MAE = 1 << 2, /* history key "mean_absolute_error" */
};

struct nncc_compile_opts {
    int defaults_;
    struct nncc_optimizer optimizer; /* default: rmsprop */
    enum nncc_loss loss;             /* required */
    unsigned metrics;                /* enum nncc_metric flags */
    bool from_logits;                /* the model outputs logits */
    uint64_t seed;                   /* dropout masks and shuffling; 0 is a seed too */
};
/* Prepares a model with one input and one output for training (the step
 * is compiled on the first fit/evaluate, which take one x and one y): a
 * model with several inputs or outputs is refused with NNCC_ERR_ARG.
 * Compiling again resets the optimizer's state. */
enum nncc_status nncc_compile_(nncc_model *model, struct nncc_compile_opts o);
#define nncc_compile(model, ...) \
    nncc_compile_((model), NNCC_OPTS_(nncc_compile_opts, __VA_ARGS__))

/* ---- Training: fit, evaluate, callbacks, history ------------------------ */

/* Name/value pairs handed to callbacks and returned by evaluate: "loss",
 * "accuracy", "val_loss", …, in Keras' order (loss, metrics, val_*, lr). */
#define NNCC_LOGS_MAX 16
struct nncc_logs {
    int n;
    char names[NNCC_LOGS_MAX][40];
    double values[NNCC_LOGS_MAX];
};
/* A value by name; NAN when absent. */
double nncc_logs_get(const struct nncc_logs *logs, const char *name);
/* Sets (or appends) a value; NNCC_ERR_ARG when full or the name is too long. */
enum nncc_status nncc_logs_set(struct nncc_logs *logs, const char *name, double value);

/* A callback: any hook may be NULL.  Epoch and batch indices are 0-based.
 * Hooks may call nncc_model_stop_training() and nncc_set_learning_rate();
 * on_epoch_end may add entries to the logs (they reach the History, as
 * ReduceLROnPlateau's "lr" does).  User callbacks run before the History
 * and the progress bar, as in Keras. */
struct nncc_callback {
    void *user;
    void (*on_train_begin)(void *user, nncc_model *m, const struct nncc_logs *logs);
    void (*on_train_end)(void *user, nncc_model *m, const struct nncc_logs *logs);
    void (*on_epoch_begin)(void *user, nncc_model *m, int epoch, const struct nncc_logs *logs);
    void (*on_epoch_end)(void *user, nncc_model *m, int epoch, struct nncc_logs *logs);
    void (*on_train_batch_begin)(void *user, nncc_model *m, int batch, const struct nncc_logs *logs);
    void (*on_train_batch_end)(void *user, nncc_model *m, int batch, const struct nncc_logs *logs);
    void (*destroy)(void *user); /* frees `user` (built-ins); called when fit ends */
};

/* Asks a running fit to stop after the current batch (Keras' model.stop_training). */
void nncc_model_stop_training(nncc_model *model);
float nncc_get_learning_rate(const nncc_model *model);
enum nncc_status nncc_set_learning_rate(nncc_model *model, float learning_rate);

/* Built-in callbacks (Keras 2.15 semantics).  monitor defaults to
 * "val_loss"; mode 0 is "auto" (max for accuracy-like names). */
enum nncc_mode { NNCC_MODE_AUTO = 0, NNCC_MODE_MIN, NNCC_MODE_MAX };

struct nncc_early_stopping_opts {
    int defaults_;
    const char *monitor;
    float min_delta;
    int patience;
    int verbose;
    enum nncc_mode mode;
    bool restore_best_weights;
    int start_from_epoch;
};
struct nncc_callback nncc_early_stopping_(struct nncc_early_stopping_opts o);
#define nncc_early_stopping(...) \
    nncc_early_stopping_(NNCC_OPTS_(nncc_early_stopping_opts, __VA_ARGS__))

struct nncc_model_checkpoint_opts {
    int defaults_;
    const char *filepath; /* may hold {epoch:02d}, {val_loss:.2f}, … */
    const char *monitor;
    int verbose;
    bool save_best_only;
    bool save_weights_only; /* nncc_save_weights; otherwise nncc_save (the whole model) */
    enum nncc_mode mode;
};
struct nncc_callback nncc_model_checkpoint_(struct nncc_model_checkpoint_opts o);
#define nncc_model_checkpoint(...) \
    nncc_model_checkpoint_(NNCC_OPTS_(nncc_model_checkpoint_opts, __VA_ARGS__))

struct nncc_callback nncc_terminate_on_nan(void);

struct nncc_reduce_lr_opts {
    int defaults_;
    const char *monitor;
    float factor;    /* 0 means 0.1 */
    int patience;    /* 0 means 10 */
    int verbose;
    enum nncc_mode mode;
    float min_delta; /* 0 means 1e-4 */
    int cooldown;
    float min_lr;
};
struct nncc_callback nncc_reduce_lr_on_plateau_(struct nncc_reduce_lr_opts o);
#define nncc_reduce_lr_on_plateau(...) \
    nncc_reduce_lr_on_plateau_(NNCC_OPTS_(nncc_reduce_lr_opts, __VA_ARGS__))

struct nncc_csv_logger_opts {
    int defaults_;
    const char *filename;
    char separator; /* 0 means ',' */
    bool append;
};
struct nncc_callback nncc_csv_logger_(struct nncc_csv_logger_opts o);
#define nncc_csv_logger(...) nncc_csv_logger_(NNCC_OPTS_(nncc_csv_logger_opts, __VA_ARGS__))

typedef struct nncc_history nncc_history; /* per-epoch logs of a fit */

struct nncc_fit_opts {
    int defaults_;
    int batch_size;                         /* 0 means 32 */
    int epochs;                             /* 0 means 1 */
    int verbose;                            /* 0 silent, 1 progress bar, 2 a line per epoch */
    double validation_split;                /* the last rows, taken before shuffling */
    const struct nncc_data *validation_data; /* overrides validation_split */
    bool no_shuffle;                        /* Keras' shuffle=False */
    int initial_epoch;
    int validation_freq;                    /* 0 means 1 */
    const struct nncc_callback *callbacks;
    int n_callbacks;
};
/* Trains a compiled model on x (n, …) and y (n, …) as Keras' fit does and
 * returns the History (NULL with the error set on bad input: the checks run
 * before training starts). */
nncc_history *nncc_fit_(nncc_model *model, const struct nncc_array *x, const struct nncc_array *y,
                        struct nncc_fit_opts o);
#define nncc_fit(model, x, y, ...) nncc_fit_((model), (x), (y), NNCC_OPTS_(nncc_fit_opts, __VA_ARGS__))

struct nncc_evaluate_opts {
    int defaults_;
    int batch_size; /* 0 means 32 */
    int verbose;
};
/* Loss and metrics over (x, y), batch-size-weighted means, in inference
 * mode.  n is 0 (and the error set) on failure. */
struct nncc_logs nncc_evaluate_(nncc_model *model, const struct nncc_array *x,
                                const struct nncc_array *y, struct nncc_evaluate_opts o);
#define nncc_evaluate(model, x, y, ...) \
    nncc_evaluate_((model), (x), (y), NNCC_OPTS_(nncc_evaluate_opts, __VA_ARGS__))

int nncc_history_num_epochs(const nncc_history *h);
int nncc_history_num_keys(const nncc_history *h);
const char *nncc_history_key(const nncc_history *h, int i);
/* The epoch number (Keras' history.epoch) of row i. */
int nncc_history_epoch(const nncc_history *h, int i);
/* The value of `key` at row i; NAN when absent. */
double nncc_history_get(const nncc_history *h, const char *key, int i);
/* Writes "epoch,<keys…>" and one line per epoch. */
enum nncc_status nncc_history_write_csv(const nncc_history *h, const char *path);
void nncc_history_free(nncc_history *h);

/* Keras 2.15's model.summary() table. */
enum nncc_status nncc_summary(const nncc_model *model, FILE *out);

/* The model's IR after the pass pipeline, as text / as Graphviz DOT. */
enum nncc_status nncc_model_dump_ir(const nncc_model *model, FILE *out);
enum nncc_status nncc_model_dot(const nncc_model *model, FILE *out);

/* ---- Arrays and data sets --------------------------------------------- */

/* A dense float32 array, row-major; shape.dim[0] counts samples (rows). */
struct nncc_array {
    struct nncc_shape shape;
    float *data; /* owned by the array */
};

/* A zero-filled array (NULL + error when a dimension is not positive or the
 * size overflows or cannot be allocated). */
struct nncc_array *nncc_array_new(struct nncc_shape shape);
void nncc_array_free(struct nncc_array *a);
/* The number of floats in an array (the product of its dimensions). */
int64_t nncc_array_size(const struct nncc_array *a);

/* Features and targets of a data set. */
struct nncc_data {
    struct nncc_array *x, *y;
};
void nncc_data_free(struct nncc_data *d);

struct nncc_idx_opts {
    int defaults_;
    int one_hot;   /* > 0: labels become one-hot rows of this many classes */
    float scale;   /* 0 means 1: images are multiplied by it (1/255.f for [0, 1]) */
    int64_t limit; /* > 0: read at most this many samples */
};
/* Reads an IDX image file and its IDX label file (gzip-compressed or plain,
 * as Fashion-MNIST ships them).  Images of shape (n, rows, cols) gain a
 * channel axis: x is (n, rows, cols, 1), NHWC.  Labels are y (n,) holding the
 * class numbers, or (n, one_hot).  On error both are NULL and the message
 * names the file and what is wrong. */
struct nncc_data nncc_load_idx_(const char *images, const char *labels, struct nncc_idx_opts o);
#define nncc_load_idx(images, labels, ...) \
    nncc_load_idx_((images), (labels), NNCC_OPTS_(nncc_idx_opts, __VA_ARGS__))
/* Reads one IDX file (any IDX type, gzip or plain) as float32, unchanged in
 * shape. */
struct nncc_array *nncc_load_idx_file(const char *path);

/* NumPy .npy: float32, float64, uint8, int64 (C order, little endian) are
 * read as float32; arrays are written as float32 ('<f4').
 * Every loader (IDX, .npy, CSV) reads regular files only: a FIFO, device or
 * directory is refused at once (NNCC_ERR_IO, naming the file), never waited
 * on. */
struct nncc_array *nncc_load_npy(const char *path);
enum nncc_status nncc_save_npy(const char *path, const struct nncc_array *a);

struct nncc_csv_opts {
    int defaults_;
    char delimiter;    /* 0 means ',' */
    bool header;       /* skip the first line */
};
/* A CSV file of numbers: one row per line, the same number of columns on
 * every line; an array of shape (rows, columns).  Parsed as it is read: the
 * first bad field is reported without reading the rest. */
struct nncc_array *nncc_load_csv_(const char *path, struct nncc_csv_opts o);
#define nncc_load_csv(path, ...) nncc_load_csv_((path), NNCC_OPTS_(nncc_csv_opts, __VA_ARGS__))

#ifdef __cplusplus
}
#endif
#endif /* NNCC_H */
