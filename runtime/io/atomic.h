/*
 * atomic.h — replacing a file atomically, shared by every writer in
 * runtime/io/ (safetensors.c for weights and model files, data_npy.c)
 * (internal).
 *
 * atomic_open() resolves symbolic links at the path (the file written is the
 * link's final target, so the link stays a link), removes stale temporary
 * files that earlier, killed writes of the same target left behind, and
 * creates a fresh temporary file beside the target.  The caller writes to
 * `fd`; atomic_commit() gives the temporary file the target's permissions
 * (an existing target's mode; 0666 & ~umask for a new file, as fopen), fsyncs
 * it, renames it over the target and fsyncs the folder; atomic_abort()
 * removes it.  Every error names `who` and the path.
 *
 * Temporary names fit NAME_MAX whatever the target's name:
 * ".nncc-<16 hex: hash of the target's base name>.<pid>.<8 hex>.tmp".  A
 * temporary file of the same target is stale when its writer's pid is no
 * longer alive, or when it was last modified more than ATOMIC_STALE_SECONDS
 * ago (a writer on another machine sharing the folder, or a reused pid);
 * a live writer's file is never touched.
 */
#ifndef NNCC_RUNTIME_ATOMIC_H
#define NNCC_RUNTIME_ATOMIC_H

#include <stdio.h>
#include <sys/types.h>
#include "ir/error.h"

#define ATOMIC_STALE_SECONDS (15 * 60)

struct atomic_file {
    char *target; /* the resolved path (malloc'd) */
    char *tmp;    /* the temporary file's path (malloc'd) */
    int fd;       /* open for writing; -1 once closed */
};

enum nncc_status atomic_open(struct atomic_file *af, const char *path, const char *who);
/* Closes f (when the caller wrapped fd in a FILE) or fd, and renames; on any
 * failure the temporary file is removed and the error names the path. */
enum nncc_status atomic_commit(struct atomic_file *af, FILE *f, const char *who, const char *path);
/* Closes f or fd and removes the temporary file. */
void atomic_abort(struct atomic_file *af, FILE *f);

/* The prefix every temporary file of `target` starts with, ".nncc-<hash>."
 * (tests use it to make look-alike files); buf holds 24 bytes. */
void atomic_temp_prefix(const char *target, char buf[24]);

#endif
