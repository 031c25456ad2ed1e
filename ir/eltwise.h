/*
 * eltwise.h — the element-wise family with ONNX semantics (internal):
 * UNARY (the functions of ir/unary.def), BINARY (numpy/ONNX
 * multidirectional broadcasting), SOFTMAX and LOG_SOFTMAX along any axis,
 * and their gradients.  ir/eltwise.c holds the tables; the shape rules are
 * in ir/ops.c like every op's.
 *
 * Softmax axis convention (SOFTMAX, LOG_SOFTMAX and their gradients): the
 * attribute `axis` is 0 for the last axis — the default every Keras layer
 * leaves, so existing SOFTMAX nodes keep their meaning and their fused and
 * row-wise kernels — a positive value for a middle axis, and negative
 * values count from the end as in ONNX.  ONNX's axis 0 (only allowed on
 * unbatched values, the batch axis cannot be reduced) is therefore
 * written −rank.  The shape rule stores the canonical form: 0 for the
 * last axis, −rank for axis 0 of a rank ≥ 2 value, else the positive
 * axis; ir_softmax_axis() reads any form.
 */
#ifndef NNCC_IR_ELTWISE_H
#define NNCC_IR_ELTWISE_H

#include "ir.h"

enum ir_unary {
#define UN(id, name, expr, deriv) IR_UNARY_##id,
#include "unary.def"
#undef UN
    IR_UNARY_COUNT
};

/* BINARY's operation, y = f(a, b) with a and b broadcast to y's shape, as
 * X(ID, "name", f(a, b), ∂f/∂a, ∂f/∂b): type-generic C text like
 * ir/unary.def's, compiled in double by the oracle and emitted in float.
 * PRELU is y = a < 0 ? b·a : a (b the slope; at a = 0 its gradient takes
 * the slope, as LEAKY_RELU's does); MAX and MIN select a on ties, and the
 * gradient goes to the selected operand; POW's ∂/∂b is y·log(a). */
#define IR_BINARY_OPS(X)                                                              \
    X(ADD, "add", a + b, K(1), K(1))                                                  \
    X(SUB, "sub", a - b, K(1), K(-1))                                                 \
    X(MUL, "mul", a * b, b, a)                                                        \
    X(DIV, "div", a / b, K(1) / b, -(a / (b * b)))                                    \
    X(POW, "pow", pow(a, b), b * pow(a, b - K(1)), pow(a, b) * log(a))                \
    X(PRELU, "prelu", (a < K(0) ? b * a : a), (a > K(0) ? K(1) : b),                  \
      (a > K(0) ? K(0) : a))                                                          \
    X(MAX, "max", (a >= b ? a : b), (a >= b ? K(1) : K(0)), (a >= b ? K(0) : K(1)))   \
    X(MIN, "min", (a <= b ? a : b), (a <= b ? K(1) : K(0)), (a <= b ? K(0) : K(1)))
enum ir_binary {
#define X(id, name, f, da, db) IR_BINARY_##id,
    IR_BINARY_OPS(X)
#undef X
    IR_BINARY_COUNT
};

/* NULL for an unknown value. */
const char *ir_unary_name(int op);
/* f as C text in v, p0, p1; f' in v, y, p0, p1 (ir/unary.def). */
const char *ir_unary_expr(int op);
const char *ir_unary_deriv(int op);
const char *ir_binary_name(int op);
/* f as C text in a, b; the partial derivative in a (which 0) or b (1). */
const char *ir_binary_expr(int op);
const char *ir_binary_deriv(int op, int which);

/* The softmax axis of a SOFTMAX, LOG_SOFTMAX or their gradient's node,
 * in [0, rank), from the attribute in any of its forms (see above). */
static inline int ir_softmax_axis(const struct ir_node *n)
{
    int r = n->in[0]->shape.rank, ax = n->a.axis;
    return ax == 0 ? r - 1 : ax < 0 ? ax + r : ax;
}

#endif
