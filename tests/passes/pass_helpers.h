/*
 * pass_helpers.h — what the pass tests (test_memplan, test_fuse, test_tile)
 * share: failing with nncc's last error, finding a layer's node in a
 * program, and small deterministic data sets.  Include after cmocka.h.
 */
#ifndef NNCC_TEST_PASS_HELPERS_H
#define NNCC_TEST_PASS_HELPERS_H

#include <string.h>
#include "nncc.h"
#include "ir/ir.h"

static inline void *ok_(void *p, const char *what, int line)
{
    if (!p)
        fail_msg("line %d: %s failed: %s", line, what, nncc_last_error());
    return p;
}
/* A pointer-returning call that must succeed. */
#define OK(expr) ok_((expr), #expr, __LINE__)
/* A status-returning call that must succeed. */
#define ST(expr)                                                                          \
    do {                                                                                  \
        if ((expr) != NNCC_OK)                                                            \
            fail_msg("line %d: %s failed: %s", __LINE__, #expr, nncc_last_error());      \
    } while (0)

/* The index in p of the node with op `op` made by layer `layer`; fails the
 * test when there is none. */
static inline int find_node(const struct ir_program *p, enum ir_op op, const char *layer)
{
    for (int i = 0; i < p->n_nodes; i++)
        if (p->nodes[i]->op == op && p->nodes[i]->layer &&
            strcmp(nncc_layer_name(p->nodes[i]->layer), layer) == 0)
            return i;
    fail_msg("no %s node of layer %s", ir_op(op)->name, layer);
    return -1;
}

/* `rows` rows shaped like s: inputs in [-1, 1) (kind 0) or one-hot targets
 * cycling through the classes (kind 1). */
static inline struct nncc_array *test_rows(int64_t rows, struct nncc_shape s, int kind)
{
    s.dim[0] = rows;
    struct nncc_array *a = OK(nncc_array_new(s));
    int64_t C = s.dim[s.rank - 1];
    for (int64_t i = 0; i < nncc_array_size(a); i++)
        a->data[i] = kind ? ((i / C) % C == i % C) : (float)((i * 37) % 101) / 50.0f - 1.0f;
    return a;
}

#endif
