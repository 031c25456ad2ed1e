/*
 * rng.h — the seeded, portable random number generator (internal).
 *
 * xoshiro256** seeded through splitmix64: integer arithmetic only, so a seed
 * gives the same stream on every machine and thread count.  Each weight (and
 * later each dropout mask) draws from a stream keyed by the model seed and
 * its own name, so values do not depend on the order things are built in.
 */
#ifndef NNCC_RUNTIME_RNG_H
#define NNCC_RUNTIME_RNG_H

#include <stdint.h>

struct nncc_rng {
    uint64_t s[4];
};

void nncc_rng_seed(struct nncc_rng *r, uint64_t seed);
uint64_t nncc_rng_next(struct nncc_rng *r);
/* Uniform in [0, 1), 53 random bits. */
double nncc_rng_uniform(struct nncc_rng *r);
/* Standard normal (Box–Muller; one draw per call, so streams stay simple). */
double nncc_rng_normal(struct nncc_rng *r);
/* A stream key from a seed and a name (FNV-1a of the name, mixed). */
uint64_t nncc_rng_key(uint64_t seed, const char *name);

#endif
