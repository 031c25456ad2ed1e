/*
 * verify.c — the IR verifier, run after every pass.
 *
 * Checks what every pass must preserve: nodes in topological order, each
 * node's arity, each value produced by its node, every input reachable in
 * the program, and every shape equal to what its op's rule computes.  A
 * failure means a bug in nncc (the user's mistakes are caught by the shape
 * rules when layers are called), so the message names the pass that broke
 * the invariant.
 */
#include <stdlib.h>
#include "ir.h"

enum nncc_status ir_verify(const struct ir_program *p, const char *after_pass)
{
    nncc_graph *g = p->g;
    int *pos = malloc(sizeof *pos * (size_t)(g->n_nodes ? g->n_nodes : 1));
    if (!pos)
        return nncc_fail(NNCC_ERR_NOMEM, "out of memory (verifier)");
    for (int i = 0; i < g->n_nodes; i++)
        pos[i] = -1;
    enum nncc_status st = NNCC_OK;
    char lb[192], s0[160], s1[160];
    for (int i = 0; i < p->n_nodes && !st; i++) {
        struct ir_node *n = p->nodes[i];
        const struct ir_op_info *info = ir_op(n->op);
        if (n->out == NULL || n->out->producer != n) {
            st = nncc_fail(NNCC_ERR_GRAPH, "verifier (after %s): %s: output not produced by it",
                           after_pass, ir_node_label(n, lb, sizeof lb));
            break;
        }
        if (info->arity >= 0 && info->arity != n->n_in) {
            st = nncc_fail(NNCC_ERR_GRAPH, "verifier (after %s): %s: %s takes %d inputs, has %d",
                           after_pass, ir_node_label(n, lb, sizeof lb), info->name, info->arity,
                           n->n_in);
            break;
        }
        for (int k = 0; k < n->n_in; k++) {
            const nncc_tensor *t = n->in[k];
            if (!t || t->g != g || pos[t->id] < 0) {
                st = nncc_fail(NNCC_ERR_GRAPH,
                               "verifier (after %s): %s: input %d is not computed before it",
                               after_pass, ir_node_label(n, lb, sizeof lb), k);
                break;
            }
        }
        if (st)
            break;
        struct nncc_shape want;
        if (info->shape(n, &want) != NNCC_OK) {
            st = NNCC_ERR_GRAPH;
            break;
        }
        if (!ir_shape_eq(want, n->out->shape)) {
            st = nncc_fail(NNCC_ERR_GRAPH,
                           "verifier (after %s): %s: output shape %s, but its rule gives %s",
                           after_pass, ir_node_label(n, lb, sizeof lb),
                           nncc_shape_str(n->out->shape, s0, sizeof s0),
                           nncc_shape_str(want, s1, sizeof s1));
            break;
        }
        pos[n->id] = i;
    }
    for (int i = 0; i < p->n_outputs && !st; i++)
        if (pos[p->outputs[i]->id] < 0)
            st = nncc_fail(NNCC_ERR_GRAPH, "verifier (after %s): output %d is not computed",
                           after_pass, i);
    free(pos);
    return st;
}
