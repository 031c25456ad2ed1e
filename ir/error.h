/*
 * error.h — how library code reports user errors and checks invariants.
 *
 * nncc_fail() records a status and a printf-style message as the calling
 * thread's last error (read back with nncc_last_error()) and returns the
 * status, so a failing function can `return nncc_fail(NNCC_ERR_SHAPE, …)`.
 * NNCC_ASSERT() is for internal invariants only: it aborts with file:line,
 * because a broken invariant is a bug in nncc, never the user's mistake.
 */
#ifndef NNCC_IR_ERROR_H
#define NNCC_IR_ERROR_H

#include <stdio.h>
#include <stdlib.h>
#include "nncc.h"

#if defined(__GNUC__)
#define NNCC_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define NNCC_PRINTF(f, a)
#endif

enum nncc_status nncc_fail(enum nncc_status status, const char *fmt, ...) NNCC_PRINTF(2, 3);

/* NULL-returning form for constructors: records the error, returns NULL. */
#define NNCC_FAIL_NULL(status, ...) (nncc_fail((status), __VA_ARGS__), NULL)

#define NNCC_ASSERT(cond)                                                          \
    do {                                                                           \
        if (!(cond)) {                                                             \
            fprintf(stderr, "%s:%d: nncc internal error: assertion '%s' failed\n", \
                    __FILE__, __LINE__, #cond);                                    \
            abort();                                                               \
        }                                                                          \
    } while (0)

#endif
