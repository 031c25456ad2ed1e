/*
 * eltwise.c — the tables of the element-wise family (ir/eltwise.h): the
 * names and C text of UNARY's functions from ir/unary.def, and BINARY's
 * operation names.
 */
#include "eltwise.h"

static const char *const unary_names[IR_UNARY_COUNT] = {
#define UN(id, name, expr, deriv) [IR_UNARY_##id] = name,
#include "unary.def"
#undef UN
};

static const char *const unary_exprs[IR_UNARY_COUNT] = {
#define UN(id, name, expr, deriv) [IR_UNARY_##id] = #expr,
#include "unary.def"
#undef UN
};

static const char *const unary_derivs[IR_UNARY_COUNT] = {
#define UN(id, name, expr, deriv) [IR_UNARY_##id] = #deriv,
#include "unary.def"
#undef UN
};

static const char *const binary_names[IR_BINARY_COUNT] = {
#define X(id, name, f, da, db) [IR_BINARY_##id] = name,
    IR_BINARY_OPS(X)
#undef X
};

static const char *const binary_exprs[IR_BINARY_COUNT][3] = {
#define X(id, name, f, da, db) [IR_BINARY_##id] = {#f, #da, #db},
    IR_BINARY_OPS(X)
#undef X
};

const char *ir_unary_name(int op) { return op >= 0 && op < IR_UNARY_COUNT ? unary_names[op] : NULL; }
const char *ir_unary_expr(int op) { return op >= 0 && op < IR_UNARY_COUNT ? unary_exprs[op] : NULL; }
const char *ir_unary_deriv(int op)
{
    return op >= 0 && op < IR_UNARY_COUNT ? unary_derivs[op] : NULL;
}
const char *ir_binary_name(int op)
{
    return op >= 0 && op < IR_BINARY_COUNT ? binary_names[op] : NULL;
}
const char *ir_binary_expr(int op)
{
    return op >= 0 && op < IR_BINARY_COUNT ? binary_exprs[op][0] : NULL;
}
const char *ir_binary_deriv(int op, int which)
{
    return op >= 0 && op < IR_BINARY_COUNT && (which == 0 || which == 1)
               ? binary_exprs[op][1 + which]
               : NULL;
}
