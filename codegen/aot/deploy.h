/*
 * deploy.h - what the files of a standalone deployment program share
 * (`nncc compile --emit exe`).  Not part of libnncc: cmake/embed.cmake turns
 * this file and deploy_inflate.c, deploy_read.c, deploy_main.c, with the
 * format parser formats.h and formats.c that libnncc shares, into strings
 * that `nncc compile` writes next to the generated NAME.c and compiles with
 * it; tests/codegen/test_deploy.c, test_inflate.c and tests/fuzz/
 * fuzz_deploy.c compile them directly.
 * They must stay ASCII, portable C11 and warning-free under -Wall -Wextra,
 * and depend on nothing but the C library.
 *
 * The generated glue (NAME_glue.c, codegen/aot.c) defines `nna_model`, the
 * one model the program runs.  The readers turn a file's bytes (gzip or not)
 * into rows of float32 as the bytes arrive and never read past the bytes
 * they are given: every length and count in a header is checked against
 * what is there, with overflow checks, before it is used.  Errors are a
 * message in a caller's buffer and a non-zero return; the program exits 2
 * on them, 1 when memory ran out (NNA_EMEM).
 */
#ifndef NNA_DEPLOY_H
#define NNA_DEPLOY_H

#include <stddef.h>
#include <stdint.h>
#include "formats.h"

/* The model, as the generated glue describes it (per-sample shapes). */
struct nna_model {
    const char *name;     /* printable: the glue escapes it */
    int in_rank;
    const long *in_dims;  /* batch excluded */
    long in_size;         /* floats per sample */
    int out_rank;
    const long *out_dims;
    long out_size;
    int batch;            /* rows per call (nncc compile --batch) */
    size_t (*ws_bytes)(int n); /* workspace bytes for n rows */
    /* 0 on success; weights are the model's own. */
    int (*predict)(const float *in, float *out, int n, void *workspace);
};
extern const struct nna_model nna_model;

/* An array read from a file: rows of floats. */
struct nna_array {
    int rank;
    uint64_t dims[NNA_MAX_RANK]; /* dims[0] counts rows (samples) */
    uint64_t count;              /* product of dims */
    int u8;                      /* the file held unsigned bytes */
    float *data;                 /* malloc'd, count floats */
};

enum nna_format { NNA_AUTO = 0, NNA_RAW, NNA_NPY, NNA_IDX };

/* nna_read's (and a sink's) status when memory ran out: the program then
 * exits 1, as for any failure that is not the input's fault. */
#define NNA_EMEM (-2)
/* The file's size when it is not known (standard input, a gzip stream's
 * output). */
#define NNA_SIZE_UNKNOWN UINT64_MAX

/* A source of bytes: [p + pos, p + len), then what fill() gives, chunk by
 * chunk (fill NULL: nothing more).  fill returns 0 and a chunk, or sets
 * *len to 0 at the end, or returns -1 on a read error (error is then
 * set).  consumed counts the bytes of earlier chunks, for messages. */
struct nna_src {
    const unsigned char *p;
    size_t len, pos;
    int (*fill)(void *ctx, const unsigned char **p, size_t *len);
    void *ctx;
    unsigned long long consumed;
    int done, error;
};
/* The next byte of a source, or -1 at its end (or on a read error). */
int nna_src_byte(struct nna_src *src);

/* Where decompressed bytes go: 0 to go on, or a non-zero status (-1, or
 * NNA_EMEM) with its message in err to stop the decoder at once. */
typedef int (*nna_sink)(void *ctx, const unsigned char *p, size_t n, char *err, size_t err_size);

/* Decompresses a gzip stream (one or more members; bytes after the last
 * member that do not start another are ignored, as gzip(1) does) from src
 * into sink, a window at a time: memory is a constant whatever the output.
 * magic_read: the first member's two magic bytes were taken from src
 * already.  0, the sink's status, or -1 (NNA_EMEM) with err set. */
int nna_gunzip_stream(struct nna_src *src, int magic_read, nna_sink sink, void *ctx, char *err,
                      size_t err_size);
/* The same into one malloc'd buffer of at most max_out bytes. */
int nna_gunzip(const unsigned char *in, size_t len, size_t max_out, unsigned char **out,
               size_t *out_len, char *err, size_t err_size);

/* Reads a file from src, whose size is `size` (NNA_SIZE_UNKNOWN when not
 * known), as it arrives: .npy ('<f4', '<f8', '|u1', '<i8', C order: what
 * nncc_load_npy reads), IDX (any type), or, with NNA_RAW, raw little-endian
 * float32 rows of row_floats each; gzip-compressed streams are inflated on
 * the way.  The header is checked as soon as its bytes are out; memory is
 * the declared array, allocated as data arrives when the size is not known,
 * plus a constant; a stream longer than its header declares is refused at
 * its first extra byte.  0, or -1 (NNA_EMEM when out of memory) with err
 * set; a[0] then holds nothing to free. */
int nna_read(struct nna_src *src, uint64_t size, enum nna_format fmt, long row_floats,
             struct nna_array *a, char *err, size_t err_size);
/* nna_read of the len bytes at buf. */
int nna_decode(const unsigned char *buf, size_t len, enum nna_format fmt, long row_floats,
               struct nna_array *a, char *err, size_t err_size);
void nna_array_free(struct nna_array *a);

/* Checks that an array holds rows of the model's input (dims equal once
 * axes of size 1 are dropped; flattened rows (n, size); a single sample
 * without a batch axis is one row) and returns the number of rows, or 0
 * with err set. */
uint64_t nna_match_rows(const struct nna_array *a, int rank, const long *dims, char *err,
                        size_t err_size);

#endif
