/*
 * keras_zip.h — the zip archives of the .keras format, over libzip.
 *
 * Contract: kzip_read reads the named members of an archive into memory
 * and nothing else: the archive's member names are all checked first (an
 * absolute path, a ".." component, a backslash or a NUL in a name, or a
 * name listed twice, is an error naming the archive and the member: nncc
 * never extracts to disk, but such an archive is not one Keras wrote),
 * sizes are checked before allocation (one member at most KZIP_MAX_MEMBER
 * bytes; the declared size must match what inflates), encrypted or
 * unsupported compression is an error.  A member that is asked for but
 * missing is an error unless `optional`.  kzip_write makes an archive in
 * memory (members stored or deflated) and replaces `path` atomically.
 * Errors go through nncc_fail() and name the archive.
 */
#ifndef NNCC_KERAS_ZIP_H
#define NNCC_KERAS_ZIP_H

#include <stdbool.h>
#include <stddef.h>
#include "ir/ir.h"

#define KZIP_MAX_MEMBER ((size_t)4 << 30)

struct kzip_member {
    const char *name; /* the member's name in the archive */
    bool optional;    /* kzip_read: missing is fine (data stays NULL) */
    void *data;       /* kzip_read: malloc'd contents (plus a NUL byte not counted) */
    size_t size;
};

/* Reads members[i].name for each i into members[i].data/size. */
enum nncc_status kzip_read(const char *path, struct kzip_member *members, int n);
/* Frees what kzip_read allocated. */
void kzip_members_free(struct kzip_member *members, int n);

/* Writes an archive holding members[0..n) (data/size), in that order,
 * replacing `path` atomically (runtime/io/atomic.c).  `what` names the
 * operation in messages ("save"). */
enum nncc_status kzip_write(const char *path, const char *what, const struct kzip_member *members,
                            int n);

#endif
