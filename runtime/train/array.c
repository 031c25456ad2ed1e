/*
 * array.c — struct nncc_array, the dense float32 array fit, evaluate and
 * predict take and return (the data loaders of runtime/io/, above, make
 * them), and struct nncc_data, a pair of them.
 *
 * An array owns one zero-filled block of product(shape) floats.  Every
 * dimension must be positive (an array is never empty) and the rank is 1 to
 * NNCC_MAX_RANK; the element count and the byte size are checked for overflow
 * before anything is allocated, so a hostile shape yields an error rather than
 * a wrapped, too-small allocation.  Freeing accepts NULL, like free().
 */
#include <stdint.h>
#include <stdlib.h>

#include "ir/error.h"

struct nncc_array *nncc_array_new(struct nncc_shape shape)
{
    if (shape.rank < 1 || shape.rank > NNCC_MAX_RANK)
        return NNCC_FAIL_NULL(NNCC_ERR_ARG, "nncc_array_new: rank %d is out of range (1 to %d)",
                              shape.rank, NNCC_MAX_RANK);
    char buf[256];
    int64_t count = 1;
    for (int i = 0; i < shape.rank; i++) {
        if (shape.dim[i] <= 0)
            return NNCC_FAIL_NULL(NNCC_ERR_ARG,
                                  "nncc_array_new: dimension %d is %lld; "
                                  "dimensions must be positive",
                                  i, (long long)shape.dim[i]);
        if (count > INT64_MAX / shape.dim[i])
            return NNCC_FAIL_NULL(NNCC_ERR_ARG, "nncc_array_new: the size of %s overflows",
                                  nncc_shape_str(shape, buf, sizeof buf));
        count *= shape.dim[i];
    }
    /* The byte size must fit both size_t and ptrdiff_t (pointer arithmetic). */
    if ((uint64_t)count > (uint64_t)PTRDIFF_MAX / sizeof(float) ||
        (uint64_t)count > SIZE_MAX / sizeof(float))
        return NNCC_FAIL_NULL(NNCC_ERR_ARG, "nncc_array_new: %s needs %lld floats: too large",
                              nncc_shape_str(shape, buf, sizeof buf), (long long)count);

    struct nncc_array *a = calloc(1, sizeof *a);
    if (!a) return NNCC_FAIL_NULL(NNCC_ERR_NOMEM, "nncc_array_new: out of memory");
    a->data = calloc((size_t)count, sizeof(float));
    if (!a->data) {
        free(a);
        return NNCC_FAIL_NULL(NNCC_ERR_NOMEM, "nncc_array_new: out of memory for %s (%lld bytes)",
                              nncc_shape_str(shape, buf, sizeof buf),
                              (long long)count * (long long)sizeof(float));
    }
    a->shape = shape;
    for (int i = shape.rank; i < NNCC_MAX_RANK; i++) a->shape.dim[i] = 0; /* tidy for dumps */
    return a;
}

void nncc_array_free(struct nncc_array *a)
{
    if (!a) return;
    free(a->data);
    free(a);
}

int64_t nncc_array_size(const struct nncc_array *a)
{
    if (!a || a->shape.rank < 1 || a->shape.rank > NNCC_MAX_RANK) return 0;
    int64_t count = 1;
    for (int i = 0; i < a->shape.rank; i++) count *= a->shape.dim[i];
    return count;
}

void nncc_data_free(struct nncc_data *d)
{
    if (!d) return;
    nncc_array_free(d->x);
    nncc_array_free(d->y);
    d->x = NULL;
    d->y = NULL;
}
