/*
 * init.h — weight initializers (ir/init.c), internal.
 */
#ifndef NNCC_RUNTIME_INIT_H
#define NNCC_RUNTIME_INIT_H

#include <stdbool.h>
#include "nncc.h"

/* Fills w (the product of s's dims floats) with initializer `kind` drawn
 * from the stream `key` (see nncc_rng_key).  NNCC_INIT_DEFAULT is zeros. */
void nncc_init_fill(float *w, struct nncc_shape s, enum nncc_initializer kind, uint64_t key);

#endif
