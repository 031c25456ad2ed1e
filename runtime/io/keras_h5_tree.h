/*
 * keras_h5_tree.h — internal to keras_h5.c and keras_h5_tree.c: reading an
 * HDF5 file in a forked child process and answering from the tree it sends.
 *
 * Contract: kh5_tree_load() forks; the child opens the image with libhdf5,
 * walks the whole file with keras_h5.c's own readers (kh5_child_walk) and
 * writes what it found to a pipe in the format below; the parent checks
 * every length and count of that stream and keeps it as a tree.  The
 * kh5t_* functions then answer keras_h5.h's read functions from the tree,
 * with the same results and messages as the in-process readers.
 *
 * The stream (little-endian as the machine; parent and child are the same
 * process image): "KH5T" u32 version, one node (the root), u32 "END!".
 *   node  := u8 type (KH5T_GROUP, KH5T_DATASET, KH5T_OTHER: then attrs and
 *            the type's part; KH5T_BROKEN: err; KH5T_DEEP: nothing;
 *            KH5T_FATAL: err, and the stream ends: the whole file failed)
 *   attrs := u8 0, u32 n, n × (str name, attr) | u8 1, err
 *   attr  := u8 1, err | u8 0, i32 class, i32 rank, i64 count,
 *            (u8 0 | u8 1, u32 n, n × str | u8 2, err)
 *   group := u8 1, err | u8 0, u32 n, n × (str name, u8 link type, [node if hard])
 *   dataset := (u8 1, err | u8 0, i32 rank, rank × i64, i64 count)
 *              then, with a shape: (u8 1, err | u8 0 numeric), then, if numeric:
 *              values (u8 0 none | u8 1, count × f32 | u8 2, err)
 *              and scalar (u8 0 | u8 1, u8 is_int, i64, f64 | u8 2, err)
 *   err   := u32 status, u8 kind (enum kh5_kind), str tail
 *   str   := u32 length with the NUL, the bytes, NUL
 */
#ifndef NNCC_KERAS_H5_TREE_H
#define NNCC_KERAS_H5_TREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "ir/ir.h"

/* The longest object path accepted (a Keras path is a few hundred bytes). */
#define KH5_MAX_PATH 4096
/* Groups deeper than this are listed but not walked (KH5T_DEEP). */
#define KH5_MAX_DEPTH 64
/* At most this many objects in a file (a Keras file has a few thousand). */
#define KH5_MAX_OBJECTS (1 << 20)
/* The child's time limit in seconds; the environment variable
 * NNCC_KH5_SECONDS overrides it (the tests and the fuzz harness set 2, under
 * libFuzzer's per-input timeout). */
#ifndef KH5_CHILD_SECONDS
#define KH5_CHILD_SECONDS 30
#endif

/* The shapes of keras_h5.c's messages: "'LABEL': " then the head (with the
 * caller's own path P and attribute name N), then a tail that names
 * neither.  The child sends the kind and the tail; the parent rebuilds the
 * message with the path the caller gave. */
enum kh5_kind {
    KH5_K_PLAIN,     /* 'L': TAIL */
    KH5_K_DS,        /* 'L': dataset 'P'TAIL */
    KH5_K_READ_DS,   /* 'L': cannot read dataset 'P'TAIL */
    KH5_K_ATTR,      /* 'L': attribute 'N' of 'P'TAIL */
    KH5_K_READ_ATTR, /* 'L': cannot read attribute 'N' of 'P'TAIL */
    KH5_K_OPEN_OBJ,  /* 'L': cannot open object 'P'TAIL */
    KH5_K_GROUP,     /* 'L': group 'P'TAIL */
    KH5_K_LIST,      /* 'L': cannot list group 'P'TAIL */
    KH5_K_COUNT
};
enum nncc_status kh5_raise(enum nncc_status st, const char *label, int kind, const char *p,
                           const char *n, const char *tail);

enum { KH5T_GROUP, KH5T_DATASET, KH5T_OTHER, KH5T_BROKEN, KH5T_DEEP, KH5T_FATAL };
enum { KH5T_HARD, KH5T_SOFT, KH5T_EXTERNAL, KH5T_UD, KH5T_UNKNOWN };

/* The child's buffered writer to the pipe (write(2) only). */
struct kh5_out {
    int fd;
    bool failed;
    size_t n;
    unsigned char buf[1 << 16];
};
void kh5_put(struct kh5_out *o, const void *p, size_t n);
void kh5_put_u8(struct kh5_out *o, unsigned v);
void kh5_put_u32(struct kh5_out *o, uint32_t v);
void kh5_put_i64(struct kh5_out *o, int64_t v);
void kh5_put_str(struct kh5_out *o, const char *s);
void kh5_put_err(struct kh5_out *o, enum nncc_status st, int kind, const char *tail);
void kh5_flush(struct kh5_out *o);

/* In the child (keras_h5.c): opens the image, walks it, writes the stream. */
void kh5_child_walk(const void *data, size_t size, const char *label, struct kh5_out *o);

struct kh5_tree;
/* Reads the file of `size` bytes at `data` in a child; NULL with the error
 * set (the child's own message, or how the child died). */
struct kh5_tree *kh5_tree_load(const void *data, size_t size, const char *label);
void kh5_tree_free(struct kh5_tree *t);

bool kh5t_is_group(const struct kh5_tree *t, const char *label, const char *path);
bool kh5t_is_dataset(const struct kh5_tree *t, const char *label, const char *path);
bool kh5t_has_attr(const struct kh5_tree *t, const char *label, const char *obj,
                   const char *name);
char *kh5t_attr_string(const struct kh5_tree *t, const char *label, const char *obj,
                       const char *name);
int kh5t_attr_strings(const struct kh5_tree *t, const char *label, const char *obj,
                      const char *name, char ***out);
int kh5t_children(const struct kh5_tree *t, const char *label, const char *group, char ***out);
enum nncc_status kh5t_shape(const struct kh5_tree *t, const char *label, const char *path,
                            struct nncc_shape *shape);
enum nncc_status kh5t_read_f32(const struct kh5_tree *t, const char *label, const char *path,
                               float *dst, int64_t n);
/* One value as keras_h5.c's read_scalar: *is_int, and the value as int64
 * (integer types, exact) and as double. */
enum nncc_status kh5t_read_scalar(const struct kh5_tree *t, const char *label, const char *path,
                                  double *dv, int64_t *iv, bool *is_int);

#endif
