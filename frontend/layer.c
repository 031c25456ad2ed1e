/*
 * layer.c — what all layers share: making, naming, calling, and answering
 * input/output/input_shape/output_shape.  The facts of each kind (class,
 * automatic-name base, inputs, lowering) come from layers.def.
 *
 * Contract of nncc_call_n(): on success the layer has one more call (Keras
 * node) whose output tensor carries the layer and call index; on failure the
 * graph and the layer are exactly as before (new nodes are dropped; a layer
 * that joined the graph in this very call leaves it again, unnamed if it was
 * named automatically).  nncc_apply_n(), behind the one-call forms
 * (`nncc_dense(x, …)`), then frees such a layer, so they never leak.
 */
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include "frontend.h"
#include "onnx.h"

/* One entry per line of layers.def, so no kind can lack one. */
static const struct layer_kind_info kinds[] = {
#define LAYER(id, c, b, mn, mx, fn, cw, cr) \
    [LAYER_##id] = {.cls = c, .base = b, .min_inputs = mn, .max_inputs = mx, .lower = fn},
#include "layers.def"
#undef LAYER
};
_Static_assert(sizeof kinds / sizeof kinds[0] == LAYER_KIND_COUNT, "one entry per layer kind");

const struct layer_kind_info *layer_kind(enum layer_kind k)
{
    NNCC_ASSERT(k >= 0 && k < LAYER_KIND_COUNT);
    return &kinds[k];
}

const char *layer_who(enum layer_kind kind, const char *name, char *buf, size_t size)
{
    if (name)
        snprintf(buf, size, "%s \"%s\"", kinds[kind].base, name);
    else
        snprintf(buf, size, "%s", kinds[kind].base);
    return buf;
}

/* ---- Option checks ----------------------------------------------------- */

bool check_name_length(const char *who, const char *what, const char *name)
{
    size_t n = strlen(name);
    if (n <= NNCC_MAX_NAME)
        return true;
    nncc_fail(NNCC_ERR_ARG, "%s: %s \"%.24s…\" is %zu bytes long; a name holds at most "
                            "NNCC_MAX_NAME (%d) bytes",
              who, what, name, n, NNCC_MAX_NAME);
    return false;
}

bool check_activation(const char *who, enum nncc_activation a)
{
    if ((int)a >= 0 && a < NNCC_ACTIVATION_COUNT)
        return true;
    nncc_fail(NNCC_ERR_ARG, "%s: unknown activation %d", who, (int)a);
    return false;
}

bool check_initializer(const char *who, const char *field, enum nncc_initializer i)
{
    if ((int)i >= 0 && i < NNCC_INITIALIZER_COUNT)
        return true;
    nncc_fail(NNCC_ERR_ARG, "%s: unknown %s %d", who, field, (int)i);
    return false;
}

bool check_input_shape(const char *who, struct nncc_shape s, bool given)
{
    char buf[160];
    if (!given)
        return true;
    if (s.rank < 0 || s.rank >= NNCC_MAX_RANK) {
        nncc_fail(NNCC_ERR_SHAPE, "%s: input shape has rank %d; at most %d dimensions besides "
                                  "the batch are supported", who, s.rank, NNCC_MAX_RANK - 1);
        return false;
    }
    for (int i = 0; i < s.rank; i++)
        if (s.dim[i] <= 0 || s.dim[i] > ((int64_t)1 << 40)) {
            nncc_fail(NNCC_ERR_SHAPE, "%s: input shape %s has a dimension that is not a "
                                      "positive size",
                      who, ir_dims_str(s, buf, sizeof buf));
            return false;
        }
    return true;
}

/* ---- Making and naming ------------------------------------------------- */

nncc_layer *layer_new(enum layer_kind kind, const char *name, struct nncc_shape input_shape)
{
    if (name && !name[0])
        return NNCC_FAIL_NULL(NNCC_ERR_ARG, "%s: a layer name cannot be empty", kinds[kind].base);
    if (name && !check_name_length(kinds[kind].base, "the layer name", name))
        return NULL;
    char who[WHO_SIZE];
    layer_who(kind, name, who, sizeof who);
    bool has_shape = input_shape.rank > 0;
    if (!check_input_shape(who, input_shape, has_shape))
        return NULL;
    nncc_layer *l = calloc(1, sizeof *l);
    if (!l || (name && !(l->name = strdup(name)))) {
        free(l);
        return NNCC_FAIL_NULL(NNCC_ERR_NOMEM, "%s: out of memory", who);
    }
    l->kind = kind;
    l->has_input_shape = has_shape;
    l->input_shape = input_shape;
    return l;
}

nncc_layer *layer_make(enum layer_kind kind, const void *opts, size_t size)
{
    const struct layer_opts_head *head = opts;
    NNCC_ASSERT(size <= sizeof(((nncc_layer *)0)->o));
    nncc_layer *l = layer_new(kind, head->name, head->input_shape);
    if (l) {
        memcpy(&l->o, opts, size);
        l->o.head.name = NULL; /* the caller's memory */
    }
    return l;
}

void layer_destroy(nncc_layer *l)
{
    if (!l)
        return;
    for (int i = 0; i < l->n_calls; i++)
        free(l->calls[i].in);
    free(l->calls);
    free(l->onnx);
    free(l->name);
    free(l);
}

void nncc_layer_free(nncc_layer *l)
{
    if (l && !l->g && !l->pending_in) /* otherwise its graph or Sequential frees it */
        layer_destroy(l);
}

static bool name_taken(const nncc_graph *g, const char *name)
{
    for (int i = 0; i < g->n_layers; i++)
        if (g->layers[i].layer->name && strcmp(g->layers[i].layer->name, name) == 0)
            return true;
    return false;
}

enum nncc_status layer_join(nncc_layer *l, nncc_graph *g, const char *auto_name)
{
    NNCC_ASSERT(!l->g);
    if (l->name) {
        if (name_taken(g, l->name))
            return nncc_fail(NNCC_ERR_GRAPH,
                             "%s \"%s\": the name is already used by another layer of this "
                             "graph; layer names must be unique",
                             kinds[l->kind].base, l->name);
    } else {
        /* An auto_name (a Sequential's "<first layer>_input") was checked
         * against NNCC_MAX_NAME by its maker; the others are short. */
        char buf[64];
        if (auto_name) {
            if (name_taken(g, auto_name))
                return nncc_fail(NNCC_ERR_GRAPH, "%s \"%s\": the name is already used in this "
                                 "graph", kinds[l->kind].base, auto_name);
            if (!(l->name = strdup(auto_name)))
                return nncc_fail(NNCC_ERR_NOMEM, "out of memory");
        } else if (l->kind == LAYER_INPUT) {
            /* Keras counts inputs from 1 (input_1), other layers from 0. */
            for (int k = 1;; k++) {
                snprintf(buf, sizeof buf, "input_%d", k);
                if (!name_taken(g, buf))
                    break;
            }
        } else {
            snprintf(buf, sizeof buf, "%s", kinds[l->kind].base);
            for (int k = 1; name_taken(g, buf); k++)
                snprintf(buf, sizeof buf, "%s_%d", kinds[l->kind].base, k);
        }
        if (!l->name && !(l->name = strdup(buf)))
            return nncc_fail(NNCC_ERR_NOMEM, "out of memory");
    }
    /* The graph keeps the label its nodes name the layer by in messages. */
    char who[WHO_SIZE];
    enum nncc_status st = ir_graph_add_layer(g, l, layer_who(l->kind, l->name, who, sizeof who));
    if (st == NNCC_OK)
        l->g = g;
    return st;
}

/* ---- Lowering helpers -------------------------------------------------- */

nncc_tensor *layer_weight(nncc_layer *l, const char *what, struct nncc_shape shape, bool trainable,
                          enum nncc_initializer init)
{
    char *name = ir_strfmt("%s/%s", l->name, what);
    if (!name)
        return NULL;
    nncc_tensor *t = ir_add_param(l->g, shape, name, trainable, init, l);
    free(name);
    if (t) {
        NNCC_ASSERT(l->n_weights < LAYER_MAX_WEIGHTS);
        l->weights[l->n_weights++] = t;
    }
    return t;
}

nncc_tensor *layer_node(nncc_layer *l, enum ir_op op, nncc_tensor *const *in, int n_in,
                        const struct ir_attrs *a, const char *what)
{
    char *name = l->n_calls == 0 ? ir_strfmt("%s/%s", l->name, what)
                                 : ir_strfmt("%s/%d/%s", l->name, l->n_calls, what);
    if (!name)
        return NULL;
    nncc_tensor *t = ir_add_node(l->g, op, in, n_in, a, l, name);
    free(name);
    return t;
}

nncc_tensor *layer_activation(nncc_layer *l, nncc_tensor *x, enum nncc_activation act)
{
    if (!x || act == NNCC_LINEAR)
        return x;
    if (act == NNCC_SOFTMAX)
        return layer_node(l, IR_SOFTMAX, &x, 1, NULL, "softmax");
    struct ir_attrs a = {.act = act};
    return layer_node(l, IR_ACTIVATION, &x, 1, &a, nncc_activation_name(act));
}

/* ---- Calling ----------------------------------------------------------- */

static nncc_tensor *call(nncc_layer *l, nncc_tensor *const *xs, int n, bool consume)
{
    if (!l) {
        /* A constructor that failed said why; otherwise say it now. */
        if (nncc_last_status() == NNCC_OK)
            nncc_fail(NNCC_ERR_ARG, "call: the layer is NULL");
        return NULL;
    }
    const struct layer_kind_info *k = layer_kind(l->kind);
    char who[WHO_SIZE];
    layer_who(l->kind, l->name, who, sizeof who);
    if (l->kind == LAYER_INPUT)
        return NNCC_FAIL_NULL(NNCC_ERR_ARG, "%s: an InputLayer cannot be called; use the tensor "
                                            "nncc_input() returned", who);
    if (l->pending_in)
        return NNCC_FAIL_NULL(NNCC_ERR_GRAPH,
                              "%s: the layer belongs to Sequential \"%s\", which is not built "
                              "yet", who, nncc_model_name(l->pending_in));
    bool fresh = l->g == NULL, auto_named = l->name == NULL;
    nncc_graph *g = NULL;
    enum nncc_status st = NNCC_OK;
    if (n < 0 || (n > 0 && !xs)) {
        st = nncc_fail(NNCC_ERR_ARG, "%s: called with %d inputs", who, n);
        goto fail;
    }
    for (int i = 0; i < n; i++)
        if (!xs[i]) {
            /* Keep an earlier failure's message: it says what went wrong. */
            st = nncc_last_status() != NNCC_OK
                     ? nncc_last_status()
                     : nncc_fail(NNCC_ERR_ARG, "%s: input %d is NULL", who, i);
            goto fail;
        }
    if (n < k->min_inputs || n > k->max_inputs) {
        st = k->max_inputs == 1
                 ? nncc_fail(NNCC_ERR_ARG, "%s: takes one input tensor, got %d", who, n)
                 : nncc_fail(NNCC_ERR_ARG, "%s: takes a list of at least %d input tensor%s, got %d",
                             who, k->min_inputs, k->min_inputs == 1 ? "" : "s", n);
        goto fail;
    }
    g = n ? xs[0]->g : l->g;
    for (int i = 1; i < n; i++)
        if (xs[i]->g != g) {
            st = nncc_fail(NNCC_ERR_GRAPH, "%s: input %d belongs to another graph than input 0",
                           who, i);
            goto fail;
        }
    if (l->g && l->g != g) {
        st = nncc_fail(NNCC_ERR_GRAPH,
                       "%s: the layer belongs to another graph; a layer can only be called on "
                       "tensors of the graph it was first called in",
                       who);
        goto fail;
    }
    if (fresh && (st = layer_join(l, g, NULL)) != NNCC_OK)
        goto fail;

    int mark = g->n_nodes;
    bool was_built = l->built;
    int had_weights = l->n_weights;
    if (!ir_grow_array(&l->calls, &l->cap_calls, l->n_calls + 1, sizeof *l->calls))
        goto rollback;
    nncc_tensor **ins = malloc(sizeof *ins * (size_t)(n ? n : 1));
    if (!ins) {
        nncc_fail(NNCC_ERR_NOMEM, "%s: out of memory", who);
        goto rollback;
    }
    if (n)
        memcpy(ins, xs, sizeof *ins * (size_t)n);
    nncc_tensor *out = k->lower(l, ins, n);
    if (!out) {
        free(ins);
        goto rollback;
    }
    out->layer = l;
    out->node_index = l->n_calls;
    l->calls[l->n_calls++] = (struct layer_call){.in = ins, .n_in = n, .out = out};
    return out;

rollback:
    g->n_nodes = mark;
    l->built = was_built;
    l->n_weights = had_weights;
    if (fresh) {
        NNCC_ASSERT(g->n_layers > 0 && g->layers[g->n_layers - 1].layer == l);
        g->n_layers--;
        l->g = NULL;
        if (auto_named) {
            free(l->name);
            l->name = NULL;
        }
    }
fail:
    (void)st;
    if (fresh && consume)
        layer_destroy(l);
    return NULL;
}

nncc_tensor *nncc_call_n(nncc_layer *l, nncc_tensor *const *xs, int n)
{
    return call(l, xs, n, false);
}

nncc_tensor *nncc_apply_n(nncc_layer *l, nncc_tensor *const *xs, int n)
{
    return call(l, xs, n, true);
}

nncc_tensor *nncc_call(nncc_layer *l, nncc_tensor *x)
{
    return call(l, &x, 1, false);
}

/* ---- Inputs ------------------------------------------------------------ */

nncc_tensor *lower_input(nncc_layer *l, nncc_tensor *const *in, int n_in)
{
    (void)in;
    (void)n_in;
    struct nncc_shape s = {.rank = l->input_shape.rank + 1};
    s.dim[0] = l->o.input.batch_size > 0 ? l->o.input.batch_size : NNCC_NONE;
    for (int i = 0; i < l->input_shape.rank; i++)
        s.dim[i + 1] = l->input_shape.dim[i];
    return ir_add_input(l->g, s, l->name, l);
}

/* Makes an InputLayer on g and calls it: the tensor Keras' Input() returns. */
nncc_tensor *frontend_input(nncc_graph *g, struct nncc_shape shape, struct nncc_input_opts o,
                            const char *auto_name)
{
    char who[WHO_SIZE];
    layer_who(LAYER_INPUT, o.name, who, sizeof who);
    if (!g)
        return NNCC_FAIL_NULL(NNCC_ERR_ARG, "%s: the graph is NULL", who);
    if (shape.rank < 0 || shape.rank >= NNCC_MAX_RANK)
        return NNCC_FAIL_NULL(NNCC_ERR_SHAPE, "%s: shape has rank %d; at most %d dimensions "
                                              "besides the batch are supported",
                              who, shape.rank, NNCC_MAX_RANK - 1);
    if (!check_input_shape(who, shape, true))
        return NULL;
    if (o.batch_size < 0)
        return NNCC_FAIL_NULL(NNCC_ERR_ARG, "%s: batch_size must be positive, got %lld", who,
                              (long long)o.batch_size);
    nncc_layer *l = layer_new(LAYER_INPUT, o.name, (struct nncc_shape){0});
    if (!l)
        return NULL;
    l->input_shape = shape;
    l->o.input = o;
    l->o.input.name = NULL;
    if (layer_join(l, g, auto_name) != NNCC_OK) {
        layer_destroy(l);
        return NULL;
    }
    l->g = g;
    l->n_calls = 0;
    nncc_tensor *t = NULL;
    if (ir_grow_array(&l->calls, &l->cap_calls, 1, sizeof *l->calls))
        t = lower_input(l, NULL, 0);
    if (!t) {
        g->n_layers--;
        layer_destroy(l);
        return NULL;
    }
    t->layer = l;
    t->node_index = 0;
    l->calls[l->n_calls++] = (struct layer_call){.in = NULL, .n_in = 0, .out = t};
    return t;
}

nncc_tensor *nncc_input_(nncc_graph *g, struct nncc_shape shape, struct nncc_input_opts o)
{
    return frontend_input(g, shape, o, NULL);
}

/* ---- Queries ----------------------------------------------------------- */

struct nncc_shape nncc_tensor_shape(const nncc_tensor *t)
{
    return t ? t->shape : (struct nncc_shape){0};
}

nncc_layer *nncc_tensor_layer(const nncc_tensor *t) { return t ? t->layer : NULL; }

nncc_graph *nncc_tensor_graph(const nncc_tensor *t) { return t ? t->g : NULL; }

const char *nncc_layer_name(const nncc_layer *l) { return l && l->name ? l->name : ""; }

const char *nncc_layer_type(const nncc_layer *l)
{
    if (l && l->kind == LAYER_ONNX && l->onnx) /* the ONNX op: "Conv" */
        return onnx_op_name(l->onnx->op);
    return l ? kinds[l->kind].cls : "";
}

int nncc_layer_num_nodes(const nncc_layer *l) { return l ? l->n_calls : 0; }

static int64_t count(const nncc_layer *l, bool trainable_only)
{
    int64_t total = 0;
    for (int i = 0; l && i < l->n_weights; i++)
        if (!trainable_only || l->weights[i]->trainable)
            total += ir_shape_numel(l->weights[i]->shape, 0);
    return total;
}

int64_t nncc_layer_count_params(const nncc_layer *l) { return count(l, false); }

int64_t nncc_layer_count_trainable_params(const nncc_layer *l) { return count(l, true); }

static bool has_call(const nncc_layer *l, int node, const char *what)
{
    char who[WHO_SIZE];
    if (!l) {
        nncc_fail(NNCC_ERR_ARG, "layer is NULL");
        return false;
    }
    layer_who(l->kind, l->name, who, sizeof who);
    if (l->n_calls == 0) {
        nncc_fail(NNCC_ERR_GRAPH, "%s: the layer has never been called, so it has no %s", who,
                  what);
        return false;
    }
    if (node < 0 || node >= l->n_calls) {
        nncc_fail(NNCC_ERR_ARG, "%s: asked for node %d, but the layer has %d", who, node,
                  l->n_calls);
        return false;
    }
    return true;
}

nncc_tensor *nncc_layer_input_at(const nncc_layer *l, int node, int i)
{
    if (!has_call(l, node, "input"))
        return NULL;
    const struct layer_call *c = &l->calls[node];
    if (l->kind == LAYER_INPUT && i == 0)
        return c->out; /* Keras: an InputLayer's input is its output */
    if (i < 0 || i >= c->n_in)
        return NNCC_FAIL_NULL(NNCC_ERR_ARG, "layer \"%s\": node %d has %d inputs, asked for %d",
                              l->name, node, c->n_in, i);
    return c->in[i];
}

nncc_tensor *nncc_layer_output_at(const nncc_layer *l, int node)
{
    return has_call(l, node, "output") ? l->calls[node].out : NULL;
}

int nncc_layer_num_inputs_at(const nncc_layer *l, int node)
{
    if (!has_call(l, node, "input"))
        return -1;
    return l->kind == LAYER_INPUT ? 1 : l->calls[node].n_in;
}

nncc_tensor *nncc_layer_input(const nncc_layer *l) { return nncc_layer_input_at(l, 0, 0); }

nncc_tensor *nncc_layer_output(const nncc_layer *l) { return nncc_layer_output_at(l, 0); }

/* Keras' layer.input_shape / output_shape: defined when all nodes agree. */
static enum nncc_status node_shape(const nncc_layer *l, bool input, struct nncc_shape *shape)
{
    const char *what = input ? "input shape" : "output shape";
    if (!has_call(l, 0, what))
        return nncc_last_status();
    struct nncc_shape first = {0};
    for (int k = 0; k < l->n_calls; k++) {
        const nncc_tensor *t = input ? nncc_layer_input_at(l, k, 0) : l->calls[k].out;
        if (k == 0) {
            first = t->shape;
        } else if (!ir_shape_eq(first, t->shape)) {
            char a[160], b[160];
            return nncc_fail(NNCC_ERR_GRAPH,
                             "layer \"%s\" has multiple inbound nodes, with different %ss "
                             "(%s at node 0, %s at node %d); ask for one node's tensor with "
                             "nncc_layer_%s_at()",
                             l->name, what, nncc_shape_str(first, a, sizeof a),
                             nncc_shape_str(t->shape, b, sizeof b), k,
                             input ? "input" : "output");
        }
    }
    if (shape)
        *shape = first;
    return NNCC_OK;
}

enum nncc_status nncc_layer_input_shape(const nncc_layer *l, struct nncc_shape *shape)
{
    return node_shape(l, true, shape);
}

enum nncc_status nncc_layer_output_shape(const nncc_layer *l, struct nncc_shape *shape)
{
    return node_shape(l, false, shape);
}
