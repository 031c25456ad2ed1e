/*
 * dropout_rng.h — the random bits of dropout masks, written once as C text.
 *
 * A mask element is kept when 24 bits of a counter-based hash of (step
 * seed, the dropout node's key, the element index) reach the threshold
 * rate·2^24: no state, so any thread may draw any element and the mask is
 * the same for every thread count.  The reference interpreter compiles this
 * macro; the code generator emits it as text (NNCC_XSTR), so both draw
 * identical masks.
 */
#ifndef NNCC_IR_DROPOUT_RNG_H
#define NNCC_IR_DROPOUT_RNG_H

#define NNCC_DROPOUT_RNG_SRC                                                             \
    static inline unsigned long long nncc_mix64(unsigned long long z)                    \
    {                                                                                    \
        z += 0x9e3779b97f4a7c15ull;                                                      \
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;                                     \
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;                                     \
        return z ^ (z >> 31);                                                            \
    }                                                                                    \
    static inline int nncc_keep(unsigned long long seed, unsigned long long key, long i, \
                                unsigned long long threshold)                            \
    {                                                                                    \
        return (nncc_mix64(seed ^ nncc_mix64(key + (unsigned long long)i)) >> 40) >=     \
               threshold;                                                                \
    }

#define NNCC_STR_(...) #__VA_ARGS__
#define NNCC_XSTR(...) NNCC_STR_(__VA_ARGS__)

/* The keep threshold for a rate in [0, 1). */
#define NNCC_DROPOUT_THRESHOLD(rate) ((unsigned long long)((double)(rate) * 16777216.0 + 0.5))

#endif
