/*
 * interp.h — the reference interpreter (runtime/oracle/interp.c), internal.
 */
#ifndef NNCC_RUNTIME_INTERP_H
#define NNCC_RUNTIME_INTERP_H

#include "ir/ir.h"

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
