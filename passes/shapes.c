/*
 * shapes.c — shape inference over a whole program.
 *
 * Requires: inputs and parameters carry their shapes; nodes in topological
 * order.  Guarantees: every value's shape is what its op's rule gives (and
 * attributes the rules normalise, such as SAME padding, are set).  Breaks
 * nothing.  The rules themselves live with the op table (ir/ops.c); layer
 * calls already ran them one node at a time, so on a freshly built model
 * this pass confirms; on a graph rebuilt from a file it is the first check.
 */
#include "passes.h"

enum nncc_status pass_shapes(struct ir_program *p)
{
    for (int i = 0; i < p->n_nodes; i++) {
        struct ir_node *n = p->nodes[i];
        struct nncc_shape s;
        enum nncc_status st = ir_op(n->op)->shape(n, &s);
        if (st != NNCC_OK)
            return st;
        n->out->shape = s;
    }
    return NNCC_OK;
}
