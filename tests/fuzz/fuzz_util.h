/*
 * fuzz_util.h — what the libFuzzer harnesses (fuzz_idx.c, fuzz_npy.c,
 * fuzz_csv.c) share: per-process temporary files that each input is written
 * to, and invariant checks that abort with a message, which libFuzzer reports
 * as a crash and saves the input of.
 *
 * The temporary files are made once per process with mkstemp() in
 * $NNCC_FUZZ_TMPDIR, else /dev/shm, else $TMPDIR, else /tmp; rewritten in
 * place for every input with pwrite() + ftruncate(); and unlinked at exit.  A
 * crashing process leaves them behind, so scripts/fuzz.sh and run_inputs.sh
 * point NNCC_FUZZ_TMPDIR at a folder of their own that they remove.  These
 * statics are harness state only; the library itself keeps none.
 */
#ifndef NNCC_FUZZ_UTIL_H
#define NNCC_FUZZ_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nncc.h"

#define FUZZ_MAX_FILES 8

static char fuzz_paths[FUZZ_MAX_FILES][512];
static int fuzz_fds[FUZZ_MAX_FILES];
static int fuzz_nfiles;

static inline void fuzz_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* Reports a broken invariant and aborts: libFuzzer saves the input. */
static inline void fuzz_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("\n==nncc fuzz== invariant violated: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

static inline void fuzz_cleanup(void)
{
    for (int i = 0; i < fuzz_nfiles; i++) unlink(fuzz_paths[i]);
}

static inline const char *fuzz_tmpdir(void)
{
    const char *own = getenv("NNCC_FUZZ_TMPDIR"); /* set by scripts/fuzz.sh */
    if (own && own[0]) return own;
    if (access("/dev/shm", W_OK | X_OK) == 0) return "/dev/shm";
    const char *t = getenv("TMPDIR");
    return t && t[0] ? t : "/tmp";
}

/* Makes a temporary file named after tag; returns its index for fuzz_path()
 * and fuzz_write().  Call it once per file per process. */
static inline int fuzz_temp_file(const char *tag)
{
    if (fuzz_nfiles == FUZZ_MAX_FILES) fuzz_die("too many temporary files");
    int i = fuzz_nfiles;
    snprintf(fuzz_paths[i], sizeof fuzz_paths[i], "%s/nncc-fuzz-%s-XXXXXX", fuzz_tmpdir(), tag);
    int fd = mkstemp(fuzz_paths[i]);
    if (fd < 0) fuzz_die("mkstemp(%s): %s", fuzz_paths[i], strerror(errno));
    fuzz_fds[i] = fd;
    if (fuzz_nfiles++ == 0) atexit(fuzz_cleanup);
    return i;
}

static inline const char *fuzz_path(int i) { return fuzz_paths[i]; }

/* Replaces the content of temporary file i with data[0, size). */
static inline void fuzz_write(int i, const uint8_t *data, size_t size)
{
    size_t done = 0;
    while (done < size) {
        ssize_t w = pwrite(fuzz_fds[i], data + done, size - done, (off_t)done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) fuzz_die("pwrite(%s): %s", fuzz_paths[i], strerror(errno));
        done += (size_t)w;
    }
    if (ftruncate(fuzz_fds[i], (off_t)size) != 0)
        fuzz_die("ftruncate(%s): %s", fuzz_paths[i], strerror(errno));
}

/* After a failed load: a status is set and the message names the file
 * (either of two paths when path2 is not NULL). */
static inline void fuzz_check_error(const char *call, const char *path, const char *path2)
{
    const char *msg = nncc_last_error();
    if (nncc_last_status() == NNCC_OK)
        fuzz_die("%s failed but nncc_last_status() is NNCC_OK (message: \"%s\")", call, msg);
    if (!msg || !msg[0]) fuzz_die("%s failed with an empty nncc_last_error()", call);
    if (!strstr(msg, path) && !(path2 && strstr(msg, path2)))
        fuzz_die("%s failed but the message does not name the file '%s'%s%s%s: \"%s\"", call,
                 path, path2 ? " (or '" : "", path2 ? path2 : "", path2 ? "')" : "", msg);
}

/* A returned array: a sane shape, size == product of the dimensions > 0,
 * and every element readable (ASan catches a too-small allocation). */
static inline void fuzz_check_array(const char *call, const struct nncc_array *a)
{
    if (!a->data) fuzz_die("%s: the array has no data", call);
    if (a->shape.rank < 1 || a->shape.rank > NNCC_MAX_RANK)
        fuzz_die("%s: rank %d is out of range", call, a->shape.rank);
    int64_t product = 1;
    for (int i = 0; i < a->shape.rank; i++) {
        int64_t d = a->shape.dim[i];
        if (d <= 0) fuzz_die("%s: dimension %d is %lld", call, i, (long long)d);
        if (product > INT64_MAX / d) fuzz_die("%s: the shape's product overflows", call);
        product *= d;
    }
    int64_t size = nncc_array_size(a);
    if (size != product || size <= 0)
        fuzz_die("%s: nncc_array_size() is %lld, the product of the shape %lld", call,
                 (long long)size, (long long)product);
    volatile uint32_t sink = 0;
    for (int64_t i = 0; i < size; i++) {
        uint32_t u;
        memcpy(&u, &a->data[i], sizeof u);
        sink ^= u;
    }
    (void)sink;
}

/* Two arrays with the same shape and bit-identical data. */
static inline bool fuzz_same_array(const struct nncc_array *a, const struct nncc_array *b)
{
    if (a->shape.rank != b->shape.rank) return false;
    for (int i = 0; i < a->shape.rank; i++)
        if (a->shape.dim[i] != b->shape.dim[i]) return false;
    return !memcmp(a->data, b->data, (size_t)nncc_array_size(a) * sizeof(float));
}

#endif
