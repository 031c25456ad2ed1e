/*
 * interp.h — the reference interpreter (runtime/interp.c), internal.
 */
#ifndef NNCC_RUNTIME_INTERP_H
#define NNCC_RUNTIME_INTERP_H

#include "../ir/ir.h"

/* Runs a program on `batch` samples in inference mode, in double: inputs[i]
 * and outputs[i] are float32 rows in the program's input/output order. */
enum nncc_status nncc_interp_run(const struct ir_program *p, int batch,
                                 const float *const *inputs, float *const *outputs);

#endif
