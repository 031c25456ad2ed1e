/*
 * interp.h — the reference interpreter (runtime/oracle/interp.c), internal.
 */
#ifndef NNCC_RUNTIME_INTERP_H
#define NNCC_RUNTIME_INTERP_H

#include "ir/ir.h"

/* The reference kernels, one per op (ir/ops.def's `ref` column; in
 * interp.c, interp_train.c and interp_norm.c): in[i] and out hold `batch`
 * samples each (or one value set when not batched), in double; h holds the
 * step's hyper-parameters (IR_HYPER_*; NULL at inference).  UPDATE writes
 * its parameter and slot inputs in place. */
#define OP(id, name, arity, view, reduces, shape, ref, emit)                             \
    void ref(const struct ir_node *n, int batch, const double *const *in, double *out, \
             const double *h);
#include "ir/ops.def"
#undef OP

/* Runs a program on `batch` samples in inference mode, in double: inputs[i]
 * and outputs[i] are float32 rows in the program's input/output order. */
enum nncc_status nncc_interp_run(const struct ir_program *p, int batch,
                                 const float *const *inputs, float *const *outputs);

/* A whole step (forward, loss, backward, updates) with hyper-parameters h
 * (IR_HYPER_*); with write_params the updated parameters and optimizer
 * slots are stored back into their values. */
enum nncc_status nncc_interp_step(const struct ir_program *p, int batch,
                                  const float *const *inputs, float *const *outputs,
                                  const double *h, bool write_params);

/* nncc_interp_step with the outputs in double, not rounded to float: what
 * gradient checks by central differences need (tests/passes/test_grad.c). */
enum nncc_status nncc_interp_step_d(const struct ir_program *p, int batch,
                                    const float *const *inputs, double *const *outputs,
                                    const double *h, bool write_params);

#endif
