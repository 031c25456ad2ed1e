/*
 * keras_h5.h — the part of HDF5 that Keras model files use, over Debian's
 * libhdf5: groups, string attributes, float and integer datasets.
 *
 * Contract: a `struct kh5` is one open file, read-only (kh5_open,
 * kh5_open_image) or being written in memory (kh5_create, then kh5_image
 * for its bytes; the caller writes them out atomically).  Paths are
 * '/'-separated from the root ("model_weights/dense/dense/kernel:0").
 * Every function reports failure through nncc_fail() with a message that
 * names the file's label (its path, or "ARCHIVE:model.weights.h5") and the
 * object; libhdf5's own error printing is silenced.  Nothing here trusts the
 * file: sizes are checked before allocation (one dataset at most
 * KH5_MAX_ELEMENTS elements, one attribute string at most KH5_MAX_STRING
 * bytes, at most KH5_MAX_CHILDREN names in a group or string list), types
 * are checked before reading, and a file that is not HDF5 is a clean error.
 *
 * A read-only file (kh5_open, at most 4 GiB, or kh5_open_image) is read
 * whole at open by libhdf5 in a forked child process (keras_h5_tree.c),
 * because libhdf5 1.10.8 crashes, hangs and allocates gigabytes on hostile
 * files: such a file fails at open with NNCC_ERR_FORMAT ("libhdf5 could not
 * read the file (killed by SIGSEGV): ..."), never taking the caller down.
 * The child has KH5_CHILD_SECONDS (30 s; the environment variable
 * NNCC_KH5_SECONDS overrides it) and a memory cap of 16 × the file +
 * 256 MiB.  One fork per open; the values are held in memory until
 * kh5_close.  A host with other threads inside libhdf5 at the moment of
 * the fork can see the child block on libhdf5's lock and time out.
 */
#ifndef NNCC_KERAS_H5_H
#define NNCC_KERAS_H5_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "ir/ir.h"

#define KH5_MAX_ELEMENTS ((int64_t)1 << 31)
#define KH5_MAX_STRING ((size_t)64 << 20)
#define KH5_MAX_CHILDREN 100000

struct kh5;

/* Opening.  `label` names the file in messages (copied). */
struct kh5 *kh5_open(const char *path, const char *label);
struct kh5 *kh5_open_image(const void *data, size_t size, const char *label);
/* A new, empty file in memory. */
struct kh5 *kh5_create(const char *label);
/* The bytes of a file made by kh5_create (malloc'd; the caller frees).  The
 * file stays open and usable. */
enum nncc_status kh5_image(struct kh5 *f, void **data, size_t *size);
void kh5_close(struct kh5 *f);
const char *kh5_label(const struct kh5 *f);

/* ---- Reading ---- */

/* Whether `path` names a group (or a dataset). */
bool kh5_is_group(struct kh5 *f, const char *path);
bool kh5_is_dataset(struct kh5 *f, const char *path);
bool kh5_has_attr(struct kh5 *f, const char *obj, const char *name);

/* A string attribute (fixed-length or variable-length, ASCII or UTF-8, a
 * scalar or a one-element array) as a malloc'd NUL-terminated string.
 * NULL with the error set when missing or not a string. */
char *kh5_attr_string(struct kh5 *f, const char *obj, const char *name);

/* A list-of-strings attribute (h5py's array of fixed or variable-length
 * strings; an empty numeric array, as h5py writes an empty list, is an
 * empty list).  Returns the count and a malloc'd array of malloc'd strings
 * in *out (free with kh5_strings_free), or -1 with the error set. */
int kh5_attr_strings(struct kh5 *f, const char *obj, const char *name, char ***out);
void kh5_strings_free(char **s, int n);

/* The names of a group's members (groups and datasets), in name order.
 * Count and *out as kh5_attr_strings; -1 with the error set. */
int kh5_children(struct kh5 *f, const char *group, char ***out);

/* A dataset's shape (rank ≤ NNCC_MAX_RANK; a scalar has rank 0). */
enum nncc_status kh5_shape(struct kh5 *f, const char *path, struct nncc_shape *shape);

/* Reads a numeric dataset (any float or integer type, converted) into
 * dst, which holds n floats: n must equal the dataset's element count. */
enum nncc_status kh5_read_f32(struct kh5 *f, const char *path, float *dst, int64_t n);

/* Reads a scalar (or one-element) numeric dataset as int64 / as double. */
enum nncc_status kh5_read_i64(struct kh5 *f, const char *path, int64_t *v);
enum nncc_status kh5_read_f64(struct kh5 *f, const char *path, double *v);

/* ---- Writing (files from kh5_create) ---- */

/* Makes a group; missing parents are made too.  An existing group is fine. */
enum nncc_status kh5_group(struct kh5 *f, const char *path);
/* A variable-length UTF-8 string attribute (as h5py writes str). */
enum nncc_status kh5_set_attr_string(struct kh5 *f, const char *obj, const char *name,
                                     const char *value);
/* A list of strings, as h5py writes a list of str (n == 0: an empty float64
 * array, as h5py writes []).  Like every attribute of h5py's default file
 * format, it must fit its object header (64 KiB: at most about 4000
 * strings, 16 bytes each whatever their length); more is an NNCC_ERR_IO.
 * Keras splits longer lists into NAME0, NAME1, ... itself. */
enum nncc_status kh5_set_attr_strings(struct kh5 *f, const char *obj, const char *name,
                                      const char *const *values, int n);
/* A float32 dataset of the given shape (rank 0: a scalar); parents made. */
enum nncc_status kh5_write_f32(struct kh5 *f, const char *path, struct nncc_shape shape,
                               const float *data);
/* An int64 scalar dataset (an optimizer's iteration count). */
enum nncc_status kh5_write_i64(struct kh5 *f, const char *path, int64_t v);

#endif
