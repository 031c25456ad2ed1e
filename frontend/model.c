/*
 * model.c — graphs, functional Models and Sequential models.
 *
 * A Model names a graph's inputs and outputs.  Building one maps its network
 * exactly as Keras' functional._map_graph_network does: Keras nodes (layer
 * calls) are found depth-first from the outputs, given depths (outputs 0,
 * a parent deeper than every child), and model.layers is ordered by
 * decreasing depth, ties broken by the order the search first met each
 * layer.  A node whose inputs cannot be computed from the model's inputs is
 * a "graph disconnected" error.  The model keeps the program its outputs
 * need; the runtime lowers it (passes/pipeline.c) when it needs code.
 *
 * A Sequential owns a graph of its own; its first layer's input_shape makes
 * the implicit input "<first layer>_input".  Until then it is unbuilt.
 */
#include <stdlib.h>
#include <string.h>
#include "frontend/frontend.h"

/* ---- Graphs ------------------------------------------------------------ */

nncc_graph *nncc_graph_new(void)
{
    nncc_graph *g = calloc(1, sizeof *g);
    if (!g)
        return NNCC_FAIL_NULL(NNCC_ERR_NOMEM, "out of memory (graph)");
    return g;
}

static void graph_destroy(nncc_graph *g)
{
    for (int i = 0; i < g->n_layers; i++)
        layer_destroy(g->layers[i].layer);
    free(g->layers);
    free(g->nodes);
    nncc_arena_free(&g->arena);
    free(g);
}

enum nncc_status nncc_graph_free(nncc_graph *g)
{
    if (!g)
        return NNCC_OK;
    if (g->n_models > 0)
        return nncc_fail(NNCC_ERR_GRAPH,
                         "cannot free a graph that %d model(s) still use; nncc_model_free() "
                         "frees it with its last model",
                         g->n_models);
    graph_destroy(g);
    return NNCC_OK;
}

/* ---- Network mapping (Keras' _map_graph_network) ----------------------- */

struct netmap {
    struct model_node *nodes; /* post-order: parents before children */
    int n, cap;
    nncc_layer **seen;        /* layers in first-met (pre-)order */
    int n_seen, cap_seen;
    unsigned char *state;     /* per node slot: 0 new, 1 in progress, 2 done */
};

static int find_node(const struct model_node *v, int n, const nncc_layer *l, int call)
{
    for (int i = 0; i < n; i++)
        if (v[i].layer == l && v[i].call == call)
            return i;
    return -1;
}

static int find_layer(nncc_layer *const *v, int n, const nncc_layer *l)
{
    for (int i = 0; i < n; i++)
        if (v[i] == l)
            return i;
    return -1;
}

static enum nncc_status visit(struct netmap *nm, const nncc_tensor *t)
{
    nncc_layer *l = t->layer;
    NNCC_ASSERT(l != NULL);
    int call = t->node_index;
    if (find_node(nm->nodes, nm->n, l, call) >= 0)
        return NNCC_OK;
    if (find_layer(nm->seen, nm->n_seen, l) < 0) {
        if (!ir_grow_array(&nm->seen, &nm->cap_seen, nm->n_seen + 1, sizeof *nm->seen))
            return NNCC_ERR_NOMEM;
        nm->seen[nm->n_seen++] = l;
    }
    const struct layer_call *c = &l->calls[call];
    for (int i = 0; i < c->n_in; i++) {
        enum nncc_status st = visit(nm, c->in[i]);
        if (st)
            return st;
    }
    /* Graphs are acyclic by construction (a call's inputs exist before it),
     * so no in-progress marking is needed. */
    if (find_node(nm->nodes, nm->n, l, call) < 0) {
        if (!ir_grow_array(&nm->nodes, &nm->cap, nm->n + 1, sizeof *nm->nodes))
            return NNCC_ERR_NOMEM;
        nm->nodes[nm->n++] = (struct model_node){.layer = l, .call = call, .depth = -1};
    }
    return NNCC_OK;
}

bool model_has_node(const nncc_model *m, const nncc_layer *l, int call)
{
    return find_node(m->net, m->n_net, l, call) >= 0;
}

static int cmp_depth_desc(const void *a, const void *b)
{
    const struct model_node *x = a, *y = b;
    return (y->depth > x->depth) - (y->depth < x->depth);
}

enum nncc_status model_build_network(nncc_model *m)
{
    struct netmap nm = {0};
    enum nncc_status st = NNCC_OK;
    for (int i = 0; i < m->n_outputs && !st; i++)
        st = visit(&nm, m->outputs[i]);
    if (st)
        goto done;

    /* Depths: walk children before parents (reverse post-order). */
    int nl = nm.n_seen;
    int *layer_depth = calloc((size_t)(nl + m->n_inputs + 1), sizeof *layer_depth);
    if (!layer_depth) {
        st = nncc_fail(NNCC_ERR_NOMEM, "out of memory (network map)");
        goto done;
    }
    for (int i = 0; i < nm.n; i++)
        nm.nodes[i].depth = 0;
    for (int i = nm.n - 1; i >= 0; i--) {
        struct model_node *node = &nm.nodes[i];
        int li = find_layer(nm.seen, nl, node->layer);
        int depth = node->depth > layer_depth[li] ? node->depth : layer_depth[li];
        layer_depth[li] = depth;
        node->depth = depth;
        const struct layer_call *c = &node->layer->calls[node->call];
        for (int k = 0; k < c->n_in; k++) {
            int pi = find_node(nm.nodes, nm.n, c->in[k]->layer, c->in[k]->node_index);
            if (nm.nodes[pi].depth < depth + 1)
                nm.nodes[pi].depth = depth + 1;
        }
    }

    /* Nodes by decreasing depth; every input must be computable. */
    struct model_node *sorted = malloc(sizeof *sorted * (size_t)(nm.n ? nm.n : 1));
    const nncc_tensor **known = malloc(sizeof *known * (size_t)(nm.n + m->n_inputs + 1));
    if (!sorted || !known) {
        free(sorted);
        free(known);
        free(layer_depth);
        st = nncc_fail(NNCC_ERR_NOMEM, "out of memory (network map)");
        goto done;
    }
    memcpy(sorted, nm.nodes, sizeof *sorted * (size_t)nm.n);
    /* qsort is not stable; ties are independent nodes, whose order only
     * matters for which error is reported first. */
    qsort(sorted, (size_t)nm.n, sizeof *sorted, cmp_depth_desc);
    int n_known = 0;
    for (int i = 0; i < m->n_inputs; i++)
        known[n_known++] = m->inputs[i];
    for (int i = 0; i < nm.n && !st; i++) {
        const struct layer_call *c = &sorted[i].layer->calls[sorted[i].call];
        if (sorted[i].layer->kind == LAYER_INPUT) {
            bool listed = false;
            for (int k = 0; k < m->n_inputs; k++)
                listed |= m->inputs[k] == c->out;
            if (!listed) {
                /* Find who needs it, for the message. */
                const char *user = "the model's outputs";
                for (int j = 0; j < nm.n; j++) {
                    const struct layer_call *u = &nm.nodes[j].layer->calls[nm.nodes[j].call];
                    for (int k = 0; k < u->n_in; k++)
                        if (u->in[k] == c->out)
                            user = nm.nodes[j].layer->name;
                }
                st = nncc_fail(NNCC_ERR_GRAPH,
                               "model \"%s\": graph disconnected: cannot obtain the value of "
                               "input \"%s\" needed by \"%s\"; the model's outputs do not depend "
                               "only on its inputs (pass \"%s\" among the inputs)",
                               m->name, sorted[i].layer->name, user, sorted[i].layer->name);
            }
            continue;
        }
        for (int k = 0; k < c->n_in && !st; k++) {
            bool ok = false;
            for (int j = 0; j < n_known && !ok; j++)
                ok = known[j] == c->in[k];
            if (!ok)
                st = nncc_fail(NNCC_ERR_GRAPH,
                               "model \"%s\": graph disconnected: cannot obtain input %d of "
                               "layer \"%s\"",
                               m->name, k, sorted[i].layer->name);
        }
        known[n_known++] = c->out;
    }
    free(known);

    /* model.layers: by decreasing depth, then first-met order.  Inputs that
     * no output needs still appear (depth 0, before the others). */
    if (!st && !m->sequential) {
        int total = nl;
        nncc_layer **order = malloc(sizeof *order * (size_t)(nl + m->n_inputs + 1));
        int *rank = malloc(sizeof *rank * (size_t)(nl + m->n_inputs + 1));
        if (!order || !rank) {
            free(order);
            free(rank);
            st = nncc_fail(NNCC_ERR_NOMEM, "out of memory (network map)");
        } else {
            for (int i = 0; i < nl; i++) {
                order[i] = nm.seen[i];
                rank[i] = i;
            }
            for (int i = 0; i < m->n_inputs; i++)
                if (find_layer(order, total, m->inputs[i]->layer) < 0) {
                    order[total] = m->inputs[i]->layer;
                    layer_depth[total] = 0;
                    rank[total] = -1;
                    total++;
                }
            /* Insertion sort: stable and small. */
            for (int i = 1; i < total; i++) {
                nncc_layer *l = order[i];
                int d = layer_depth[i], r = rank[i], j = i - 1;
                while (j >= 0 && (layer_depth[j] < d || (layer_depth[j] == d && rank[j] > r))) {
                    order[j + 1] = order[j];
                    layer_depth[j + 1] = layer_depth[j];
                    rank[j + 1] = rank[j];
                    j--;
                }
                order[j + 1] = l;
                layer_depth[j + 1] = d;
                rank[j + 1] = r;
            }
            free(rank);
            free(m->layers);
            m->layers = order;
            m->n_layers = m->cap_layers = total;
        }
    }
    free(layer_depth);
    if (!st) {
        free(m->net);
        m->net = sorted;
        m->n_net = nm.n;
    } else {
        free(sorted);
    }

done:
    free(nm.nodes);
    free(nm.seen);
    if (st)
        return st;
    if (m->release_runtime) /* the program changes: compile again when needed */
        m->release_runtime(m);
    ir_program_free(&m->program);
    return ir_program_init(&m->program, m->g, m->inputs, m->n_inputs, m->outputs, m->n_outputs);
}

/* ---- Models ------------------------------------------------------------ */

static void model_destroy(nncc_model *m)
{
    if (!m)
        return;
    if (m->sequential)
        for (int i = 0; i < m->n_layers; i++)
            if (m->layers[i]->pending_in == m)
                layer_destroy(m->layers[i]); /* held by an unbuilt Sequential */
    if (m->release_runtime)
        m->release_runtime(m);
    ir_program_free(&m->program);
    free(m->layers);
    free(m->net);
    free(m->inputs);
    free(m->outputs);
    free(m->name);
    if (m->g && --m->g->n_models == 0)
        graph_destroy(m->g);
    free(m);
}

void nncc_model_free(nncc_model *m) { model_destroy(m); }

static bool tensors_ok(const char *what, nncc_tensor *const *ts, int n, nncc_graph **g)
{
    if (n < 1 || !ts) {
        nncc_fail(NNCC_ERR_ARG, "model: needs at least one %s, got %d", what, n);
        return false;
    }
    for (int i = 0; i < n; i++) {
        if (!ts[i]) {
            if (nncc_last_status() == NNCC_OK)
                nncc_fail(NNCC_ERR_ARG, "model: %s %d is NULL", what, i);
            return false;
        }
        if (!*g)
            *g = ts[i]->g;
        if (ts[i]->g != *g) {
            nncc_fail(NNCC_ERR_GRAPH, "model: %s %d belongs to another graph than the others",
                      what, i);
            return false;
        }
    }
    return true;
}

/* The graph of the non-NULL tensors when some tensor is NULL (a layer call
 * failed) and all the others share one graph that no model uses; else NULL. */
static nncc_graph *orphan_graph(nncc_tensor *const *ins, int n_in, nncc_tensor *const *outs,
                                int n_out)
{
    nncc_graph *g = NULL;
    bool some_null = false;
    for (int k = 0; k < 2; k++) {
        nncc_tensor *const *ts = k ? outs : ins;
        for (int i = 0; ts && i < (k ? n_out : n_in); i++) {
            if (!ts[i])
                some_null = true;
            else if (!g)
                g = ts[i]->g;
            else if (ts[i]->g != g)
                return NULL;
        }
    }
    return some_null && g && g->n_models == 0 ? g : NULL;
}

nncc_model *nncc_model_new_n_(nncc_tensor *const *inputs, int n_inputs,
                              nncc_tensor *const *outputs, int n_outputs, struct nncc_model_opts o)
{
    nncc_graph *g = NULL;
    if (!tensors_ok("input", inputs, n_inputs, &g) ||
        !tensors_ok("output", outputs, n_outputs, &g)) {
        /* `return nncc_model_new(x, y);` after a failed layer call (y NULL)
         * is the tutorial's pattern: the graph would be lost, so it goes
         * here (nncc.h, Memory). */
        nncc_graph *orphan = orphan_graph(inputs, n_inputs, outputs, n_outputs);
        if (orphan)
            graph_destroy(orphan);
        return NULL;
    }
    for (int i = 0; i < n_inputs; i++) {
        if (inputs[i]->role != IR_ROLE_INPUT)
            return NNCC_FAIL_NULL(NNCC_ERR_GRAPH,
                                  "model: input %d is the output of layer \"%s\"; model inputs "
                                  "must come from nncc_input()",
                                  i, nncc_layer_name(inputs[i]->layer));
        for (int k = 0; k < i; k++)
            if (inputs[k] == inputs[i])
                return NNCC_FAIL_NULL(NNCC_ERR_GRAPH, "model: input \"%s\" is listed twice",
                                      inputs[i]->name);
    }
    if (o.name && !o.name[0])
        return NNCC_FAIL_NULL(NNCC_ERR_ARG, "model: a model name cannot be empty");
    if (o.name && !check_name_length("model", "the model name", o.name))
        return NULL;
    nncc_model *m = calloc(1, sizeof *m);
    char auto_name[32];
    if (g->n_models_made == 0)
        snprintf(auto_name, sizeof auto_name, "model");
    else
        snprintf(auto_name, sizeof auto_name, "model_%d", g->n_models_made);
    if (!m || !(m->name = strdup(o.name ? o.name : auto_name)) ||
        !(m->inputs = malloc(sizeof *m->inputs * (size_t)n_inputs)) ||
        !(m->outputs = malloc(sizeof *m->outputs * (size_t)n_outputs))) {
        if (m) {
            free(m->name);
            free(m->inputs);
        }
        free(m);
        return NNCC_FAIL_NULL(NNCC_ERR_NOMEM, "out of memory (model)");
    }
    memcpy(m->inputs, inputs, sizeof *inputs * (size_t)n_inputs);
    memcpy(m->outputs, outputs, sizeof *outputs * (size_t)n_outputs);
    m->n_inputs = n_inputs;
    m->n_outputs = n_outputs;
    m->built = true;
    m->g = g;
    if (model_build_network(m) != NNCC_OK) {
        m->g = NULL; /* the graph stays the caller's */
        model_destroy(m);
        return NULL;
    }
    g->n_models++;
    g->n_models_made++;
    return m;
}

/* ---- Sequential -------------------------------------------------------- */

static bool seq_push(nncc_model *m, nncc_layer *l)
{
    if (!ir_grow_array(&m->layers, &m->cap_layers, m->n_layers + 1, sizeof *m->layers))
        return false;
    m->layers[m->n_layers++] = l;
    return true;
}

enum nncc_status nncc_sequential_add(nncc_model *m, nncc_layer *l)
{
    if (!l)
        return nncc_last_status() != NNCC_OK ? nncc_last_status()
                                             : nncc_fail(NNCC_ERR_ARG, "sequential: layer is NULL");
    if (!m || !m->sequential) {
        nncc_layer_free(l);
        return nncc_fail(NNCC_ERR_ARG, "sequential_add: the model is %s",
                         m ? "not a Sequential model" : "NULL");
    }
    char who[WHO_SIZE];
    layer_who(l->kind, l->name, who, sizeof who);
    if (l->pending_in)
        return nncc_fail(NNCC_ERR_GRAPH,
                         "sequential \"%s\": %s was already added to Sequential \"%s\"; add a "
                         "new layer object",
                         m->name, who, l->pending_in->name);
    if (l->g) {
        return nncc_fail(NNCC_ERR_GRAPH,
                         "sequential \"%s\": %s already belongs to a graph; add a new layer "
                         "object",
                         m->name, who);
    }
    if (layer_kind(l->kind)->max_inputs != 1) {
        layer_destroy(l);
        return nncc_fail(NNCC_ERR_ARG,
                         "sequential \"%s\": %s takes several inputs; a Sequential model needs "
                         "layers with one input and one output",
                         m->name, who);
    }
    nncc_graph *g = m->g;
    if (!m->built && m->n_layers == 0 && l->has_input_shape) {
        /* Keras names the implicit input after the first layer: "dense_input". */
        if (!l->name) {
            if (layer_join(l, g, NULL) != NNCC_OK) {
                layer_destroy(l);
                return nncc_last_status();
            }
            g->n_layers--; /* keep the name; nncc_call() joins it again */
            l->g = NULL;
        }
        char *name = ir_strfmt("%s_input", l->name);
        if (name && strlen(name) > NNCC_MAX_NAME) {
            nncc_fail(NNCC_ERR_ARG,
                      "sequential \"%s\": the implicit input is named after the first layer, "
                      "\"%.24s…_input\", %zu bytes long; a name holds at most NNCC_MAX_NAME "
                      "(%d) bytes: shorten the layer's name or start from nncc_input()",
                      m->name, l->name, strlen(name), NNCC_MAX_NAME);
            free(name);
            name = NULL;
        }
        int mark = g->n_nodes;
        nncc_tensor *x = name ? frontend_input(g, l->input_shape, (struct nncc_input_opts){0},
                                               name)
                              : NULL;
        free(name);
        if (!x) {
            layer_destroy(l);
            return nncc_last_status();
        }
        nncc_tensor *y = nncc_apply_n(l, &x, 1);
        if (!y) {
            g->n_layers--; /* drop the input layer again */
            layer_destroy(g->layers[g->n_layers].layer);
            g->n_nodes = mark;
            return nncc_last_status();
        }
        m->inputs[0] = x;
        m->outputs[0] = y;
        m->n_inputs = m->n_outputs = 1;
        m->built = true;
        if (!seq_push(m, l))
            return NNCC_ERR_NOMEM;
        return model_build_network(m);
    }
    if (!m->built) {
        /* Keras keeps such layers until the model is built; nncc has no
         * later chance to learn the input shape, so summary() will say so. */
        if (!seq_push(m, l)) {
            layer_destroy(l);
            return NNCC_ERR_NOMEM;
        }
        l->pending_in = m;
        return NNCC_OK;
    }
    nncc_tensor *y = nncc_apply_n(l, m->outputs, 1);
    if (!y)
        return nncc_last_status();
    m->outputs[0] = y;
    if (!seq_push(m, l))
        return NNCC_ERR_NOMEM;
    return model_build_network(m);
}

nncc_model *nncc_sequential_(nncc_layer *const *layers, int n, struct nncc_model_opts o)
{
    enum nncc_status st = NNCC_OK;
    nncc_model *m = NULL;
    nncc_graph *g = NULL;
    if (n < 0 || (n > 0 && !layers)) {
        st = nncc_fail(NNCC_ERR_ARG, "sequential: %d layers", n);
        goto fail;
    }
    if (o.name && !o.name[0]) {
        st = nncc_fail(NNCC_ERR_ARG, "sequential: a model name cannot be empty");
        goto fail;
    }
    if (o.name && !check_name_length("sequential", "the model name", o.name)) {
        st = nncc_last_status();
        goto fail;
    }
    g = nncc_graph_new();
    m = calloc(1, sizeof *m);
    if (!g || !m || !(m->name = strdup(o.name ? o.name : "sequential")) ||
        !(m->inputs = calloc(1, sizeof *m->inputs)) || !(m->outputs = calloc(1, sizeof *m->outputs))) {
        st = nncc_fail(NNCC_ERR_NOMEM, "out of memory (sequential)");
        goto fail;
    }
    m->g = g;
    g->n_models = 1;
    g->n_models_made = 1;
    g = NULL;
    m->sequential = true;
    for (int i = 0; i < n; i++) {
        if (!layers[i]) {
            if (nncc_last_status() == NNCC_OK)
                nncc_fail(NNCC_ERR_ARG, "sequential: layer %d is NULL", i);
            st = nncc_last_status();
            for (int k = i + 1; k < n; k++)
                nncc_layer_free(layers[k]);
            goto fail;
        }
        st = nncc_sequential_add(m, layers[i]);
        if (st) {
            for (int k = i + 1; k < n; k++)
                nncc_layer_free(layers[k]);
            goto fail;
        }
    }
    return m;
fail:
    (void)st;
    if (g)
        nncc_graph_free(g);
    if (m)
        model_destroy(m);
    else if (layers)
        for (int k = 0; k < n; k++)
            nncc_layer_free(layers[k]);
    return NULL;
}

/* ---- Queries ----------------------------------------------------------- */

const char *nncc_model_name(const nncc_model *m) { return m ? m->name : ""; }

int nncc_model_num_layers(const nncc_model *m) { return m ? m->n_layers : 0; }

nncc_layer *nncc_model_layer(const nncc_model *m, int i)
{
    if (!m || i < 0 || i >= m->n_layers)
        return NNCC_FAIL_NULL(NNCC_ERR_ARG, "model \"%s\": no layer %d (it has %d)",
                              m ? m->name : "", i, m ? m->n_layers : 0);
    return m->layers[i];
}

nncc_layer *nncc_model_get_layer(const nncc_model *m, const char *name)
{
    for (int i = 0; m && name && i < m->n_layers; i++)
        if (m->layers[i]->name && strcmp(m->layers[i]->name, name) == 0)
            return m->layers[i];
    return NNCC_FAIL_NULL(NNCC_ERR_ARG, "model \"%s\": no layer named \"%s\"", m ? m->name : "",
                          name ? name : "(null)");
}

int nncc_model_num_inputs(const nncc_model *m) { return m ? m->n_inputs : 0; }
int nncc_model_num_outputs(const nncc_model *m) { return m ? m->n_outputs : 0; }

nncc_tensor *nncc_model_input(const nncc_model *m, int i)
{
    return m && i >= 0 && i < m->n_inputs ? m->inputs[i] : NULL;
}

nncc_tensor *nncc_model_output(const nncc_model *m, int i)
{
    return m && i >= 0 && i < m->n_outputs ? m->outputs[i] : NULL;
}

static int64_t model_params(const nncc_model *m, bool trainable_only)
{
    int64_t total = 0;
    for (int i = 0; m && i < m->n_layers; i++) /* each layer once: shared weights count once */
        total += trainable_only ? nncc_layer_count_trainable_params(m->layers[i])
                                : nncc_layer_count_params(m->layers[i]);
    return total;
}

int64_t nncc_model_count_params(const nncc_model *m) { return model_params(m, false); }

int64_t nncc_model_count_trainable_params(const nncc_model *m) { return model_params(m, true); }

static bool model_ready(const nncc_model *m)
{
    if (!m) {
        nncc_fail(NNCC_ERR_ARG, "model is NULL");
        return false;
    }
    if (!m->built) {
        nncc_fail(NNCC_ERR_GRAPH,
                  "model \"%s\" has not been built: give its first layer an .input_shape",
                  m->name);
        return false;
    }
    return true;
}

enum nncc_status nncc_model_dump_ir(const nncc_model *m, FILE *out)
{
    if (!model_ready(m))
        return nncc_last_status();
    ir_print(&m->program, out);
    return NNCC_OK;
}

enum nncc_status nncc_model_dot(const nncc_model *m, FILE *out)
{
    if (!model_ready(m))
        return nncc_last_status();
    ir_print_dot(&m->program, NULL, m->name, out);
    return NNCC_OK;
}

bool model_check_ready(const nncc_model *m) { return model_ready(m); }
