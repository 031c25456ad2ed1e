/*
 * graph.c — graph construction and programs (the arena is ir/arena.c).
 *
 * Contract: ir_add_node() either adds a fully formed node (inputs copied,
 * shape computed by the op's rule, output value created) or adds nothing and
 * returns NULL with the error set.  Nodes are only ever appended, so the
 * node array is always in topological order.  A node made for a layer
 * carries the label the layer joined the graph with, so messages about it
 * need nothing from the frontend.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ir.h"
#include "init.h"
#include "rng.h"

/* ---- Nodes ------------------------------------------------------------- */

static bool grow(void *arrayp, int *cap, int need, size_t elem)
{
    if (need <= *cap)
        return true;
    int ncap = *cap ? *cap * 2 : 16;
    while (ncap < need)
        ncap *= 2;
    void **array = arrayp;
    void *p = realloc(*array, (size_t)ncap * elem);
    if (!p) {
        nncc_fail(NNCC_ERR_NOMEM, "out of memory (growing an array to %d entries)", ncap);
        return false;
    }
    *array = p;
    *cap = ncap;
    return true;
}

bool ir_grow_array(void *arrayp, int *cap, int need, size_t elem)
{
    return grow(arrayp, cap, need, elem);
}

char *ir_strfmt(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (!s) {
        nncc_fail(NNCC_ERR_NOMEM, "out of memory (a name)");
        return NULL;
    }
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

enum nncc_status ir_graph_add_layer(nncc_graph *g, nncc_layer *layer, const char *label)
{
    const char *copy = nncc_arena_strdup(&g->arena, label);
    if (!copy || !grow(&g->layers, &g->cap_layers, g->n_layers + 1, sizeof *g->layers))
        return nncc_last_status();
    g->layers[g->n_layers++] = (struct ir_graph_layer){.layer = layer, .label = copy};
    return NNCC_OK;
}

/* The label a layer joined g with.  Newest first: the caller is usually the
 * layer that joined last. */
static const char *layer_label(const nncc_graph *g, const nncc_layer *layer)
{
    for (int i = g->n_layers - 1; i >= 0; i--)
        if (g->layers[i].layer == layer)
            return g->layers[i].label;
    NNCC_ASSERT(!"a node's layer has joined its graph");
    return NULL;
}

static nncc_tensor *append(nncc_graph *g, enum ir_op op, nncc_tensor *const *in, int n_in,
                           const struct ir_attrs *a, nncc_layer *layer, const char *name,
                           struct nncc_shape shape, bool check)
{
    if (!grow(&g->nodes, &g->cap_nodes, g->n_nodes + 1, sizeof *g->nodes))
        return NULL;
    struct ir_node *n = nncc_arena_alloc(&g->arena, sizeof *n);
    nncc_tensor *t = nncc_arena_alloc(&g->arena, sizeof *t);
    nncc_tensor **ins = n_in ? nncc_arena_alloc(&g->arena, sizeof *ins * (size_t)n_in) : NULL;
    const char *nm = nncc_arena_strdup(&g->arena, name);
    if (!n || !t || (n_in && !ins) || !nm)
        return NULL;
    n->id = g->n_nodes;
    n->op = op;
    n->n_in = n_in;
    n->in = ins;
    for (int i = 0; i < n_in; i++)
        ins[i] = in[i];
    if (a)
        n->a = *a;
    n->layer = layer;
    n->label = layer ? layer_label(g, layer) : NULL;
    n->name = nm;
    n->out = t;
    t->id = n->id;
    t->producer = n;
    t->g = g;
    t->name = nm;
    t->role = op == IR_INPUT ? IR_ROLE_INPUT : op == IR_PARAM ? IR_ROLE_PARAM : IR_ROLE_ACTIVATION;
    t->shape = shape;
    t->batched = op == IR_INPUT;
    if (!ir_op(op)->reduces)
        for (int i = 0; i < n_in; i++)
            t->batched |= in[i]->batched;
    if (check) {
        const struct ir_op_info *info = ir_op(op);
        if (info->arity >= 0 && info->arity != n_in) {
            char lb[160];
            return NNCC_FAIL_NULL(NNCC_ERR_GRAPH, "%s: op %s takes %d inputs, got %d",
                                  ir_node_label(n, lb, sizeof lb), info->name, info->arity, n_in);
        }
        for (int i = 0; i < n_in; i++) {
            NNCC_ASSERT(in[i] != NULL);
            if (in[i]->g != g) {
                char lb[160];
                return NNCC_FAIL_NULL(NNCC_ERR_GRAPH,
                                      "%s: input %d belongs to another graph; a model's "
                                      "layers must all be built on one graph",
                                      ir_node_label(n, lb, sizeof lb), i);
            }
        }
        /* The node is not yet appended: a rejected node leaves no trace but
         * a few arena bytes. */
        if (info->shape(n, &t->shape) != NNCC_OK)
            return NULL;
    }
    g->nodes[g->n_nodes++] = n;
    return t;
}

nncc_tensor *ir_add_node(nncc_graph *g, enum ir_op op, nncc_tensor *const *in, int n_in,
                         const struct ir_attrs *a, nncc_layer *layer, const char *name)
{
    return append(g, op, in, n_in, a, layer, name, (struct nncc_shape){0}, true);
}

nncc_tensor *ir_add_input(nncc_graph *g, struct nncc_shape shape, const char *name,
                          nncc_layer *layer)
{
    return append(g, IR_INPUT, NULL, 0, NULL, layer, name, shape, false);
}

nncc_tensor *ir_add_param(nncc_graph *g, struct nncc_shape shape, const char *name,
                          bool trainable, enum nncc_initializer init, nncc_layer *layer)
{
    int64_t n = ir_shape_numel(shape, 0);
    if (n < 0 || (uint64_t)n > SIZE_MAX / sizeof(float) / 2)
        return NNCC_FAIL_NULL(NNCC_ERR_SHAPE, "weight \"%s\": its shape is too large", name);
    float *data = nncc_arena_alloc(&g->arena, (size_t)n * sizeof(float));
    if (!data)
        return NULL;
    nncc_tensor *t = append(g, IR_PARAM, NULL, 0, NULL, layer, name, shape, false);
    if (t) {
        t->trainable = trainable;
        t->data = data;
        t->init = init;
        ir_param_init(t, g->seed);
    }
    return t;
}

nncc_tensor *ir_add_slot(nncc_graph *g, const nncc_tensor *param, const char *name, float init)
{
    int64_t n = ir_shape_numel(param->shape, 0);
    float *data = nncc_arena_alloc(&g->arena, (size_t)n * sizeof(float));
    if (!data)
        return NULL;
    nncc_tensor *t = append(g, IR_PARAM, NULL, 0, NULL, NULL, name, param->shape, false);
    if (t) {
        t->role = IR_ROLE_SLOT;
        t->data = data;
        for (int64_t i = 0; i < n; i++)
            data[i] = init;
    }
    return t;
}

void ir_param_init(nncc_tensor *t, uint64_t seed)
{
    nncc_init_fill(t->data, t->shape, t->init, nncc_rng_key(seed, t->name));
}

const char *ir_node_label(const struct ir_node *n, char *buf, size_t size)
{
    if (n->label)
        snprintf(buf, size, "%s", n->label);
    else
        snprintf(buf, size, "%s \"%s\"", ir_op(n->op)->name, n->name);
    return buf;
}

/* ---- Programs ---------------------------------------------------------- */

enum nncc_status ir_program_init(struct ir_program *p, nncc_graph *g, nncc_tensor *const *inputs,
                                 int n_inputs, nncc_tensor *const *outputs, int n_outputs)
{
    memset(p, 0, sizeof *p);
    p->g = g;
    unsigned char *need = calloc((size_t)g->n_nodes + 1, 1);
    p->inputs = malloc(sizeof *p->inputs * (size_t)(n_inputs ? n_inputs : 1));
    p->outputs = malloc(sizeof *p->outputs * (size_t)(n_outputs ? n_outputs : 1));
    p->nodes = malloc(sizeof *p->nodes * (size_t)(g->n_nodes ? g->n_nodes : 1));
    if (!need || !p->inputs || !p->outputs || !p->nodes) {
        free(need);
        ir_program_free(p);
        return nncc_fail(NNCC_ERR_NOMEM, "out of memory (program of %d nodes)", g->n_nodes);
    }
    if (n_inputs) /* a program of constants has none, and maybe no array */
        memcpy(p->inputs, inputs, sizeof *inputs * (size_t)n_inputs);
    if (n_outputs)
        memcpy(p->outputs, outputs, sizeof *outputs * (size_t)n_outputs);
    p->n_inputs = n_inputs;
    p->n_outputs = n_outputs;
    for (int i = 0; i < n_outputs; i++)
        need[outputs[i]->id] = 1;
    /* Reverse sweep: creation order is topological, so one pass suffices. */
    for (int i = g->n_nodes - 1; i >= 0; i--) {
        if (!need[i])
            continue;
        const struct ir_node *n = g->nodes[i];
        for (int k = 0; k < n->n_in; k++)
            need[n->in[k]->id] = 1;
    }
    for (int i = 0; i < g->n_nodes; i++)
        if (need[i])
            p->nodes[p->n_nodes++] = g->nodes[i];
    free(need);
    return NNCC_OK;
}

void ir_program_free(struct ir_program *p)
{
    free(p->nodes);
    free(p->inputs);
    free(p->outputs);
    memset(p, 0, sizeof *p);
}

/* ---- Shapes ------------------------------------------------------------ */

bool ir_shape_eq(struct nncc_shape a, struct nncc_shape b)
{
    if (a.rank != b.rank)
        return false;
    for (int i = 0; i < a.rank; i++)
        if (a.dim[i] != b.dim[i])
            return false;
    return true;
}

int64_t ir_shape_numel(struct nncc_shape s, int from)
{
    int64_t n = 1;
    for (int i = from; i < s.rank; i++) {
        if (s.dim[i] < 0)
            return -1;
        if (s.dim[i] && n > INT64_MAX / s.dim[i])
            return -1;
        n *= s.dim[i];
    }
    return n;
}

int64_t ir_conv_out_size(int64_t n, int k, int stride, int dilation, enum nncc_padding pad,
                         int *pad_before, int *pad_after)
{
    int64_t keff = (int64_t)k + (int64_t)(k - 1) * (dilation - 1);
    int64_t out;
    if (pad == NNCC_SAME)
        out = (n + stride - 1) / stride;
    else
        out = n >= keff ? (n - keff) / stride + 1 : 0;
    int64_t total = 0;
    if (pad == NNCC_SAME && out > 0) {
        total = (out - 1) * stride + keff - n;
        if (total < 0)
            total = 0;
    }
    if (pad_before)
        *pad_before = (int)(total / 2);
    if (pad_after)
        *pad_after = (int)(total - total / 2);
    return out;
}

char *nncc_shape_str(struct nncc_shape s, char *buf, size_t size)
{
    size_t len = 0;
    if (size == 0)
        return buf;
    buf[0] = '\0';
#define PUT(...)                                                         \
    do {                                                                 \
        if (len < size)                                                  \
            len += (size_t)snprintf(buf + len, size - len, __VA_ARGS__); \
    } while (0)
    PUT("(");
    for (int i = 0; i < s.rank; i++) {
        if (i)
            PUT(", ");
        if (s.dim[i] < 0)
            PUT("None");
        else
            PUT("%lld", (long long)s.dim[i]);
    }
    PUT(s.rank == 1 ? ",)" : ")");
#undef PUT
    return buf;
}

char *ir_dims_str(struct nncc_shape s, char *buf, size_t size)
{
    size_t len = 0;
    if (size == 0)
        return buf;
    len += (size_t)snprintf(buf, size, "(");
    for (int i = 0; i < s.rank && len < size; i++)
        len += (size_t)snprintf(buf + len, size - len, "%s%lld", i ? ", " : "", (long long)s.dim[i]);
    if (len < size)
        snprintf(buf + len, size - len, s.rank == 1 ? ",)" : ")");
    return buf;
}

double ir_decimal(float v)
{
    char buf[32];
    for (int digits = 1; digits <= 9; digits++) {
        snprintf(buf, sizeof buf, "%.*g", digits, (double)v);
        double d = strtod(buf, NULL);
        if ((float)d == v)
            return d;
    }
    return (double)v;
}
