/*
 * formats.h - the one parser of nncc's array file formats: IDX (as MNIST and
 * Fashion-MNIST ship) and NumPy .npy.  Headers are checked and element runs
 * decoded from bytes in memory; files, gzip and error reporting belong to
 * the callers.
 *
 * Two programs compile formats.c: libnncc, whose loaders (runtime/io/
 * data_idx.c, data_npy.c) open files, stream them through zlib or stdio and
 * turn the messages into nncc errors; and every standalone deployment
 * program (`nncc compile --emit exe`), which gets this header and formats.c
 * as embedded text (CMakeLists.txt, nncc_embed) beside deploy_read.c.  So
 * both files stay ASCII, portable C11, warning-free under -Wall -Wextra and
 * depend on nothing but the C library; they live in codegen/aot/ because
 * the layering lets runtime/io/ include a codegen/ header but not the
 * reverse.
 *
 * Contract: nothing is read outside [b, b + len); every length, dimension
 * and count a header claims is checked, with overflow checks, before it is
 * used (the element count times 8 fits an int64_t).  Errors are a message
 * in the caller's buffer (without a file name: the caller adds one) and a
 * return of -1.  Multi-byte values are assembled byte by byte, so the
 * host's byte order and the data's alignment do not matter.  No global
 * mutable state.
 */
#ifndef NNA_FORMATS_H
#define NNA_FORMATS_H

#include <stddef.h>
#include <stdint.h>

#define NNA_MAX_RANK 8
#define NNA_NPY_MAX_HEADER (1 << 20) /* real .npy headers are ~100 bytes */
#define NNA_NPY_PREFIX 12            /* bytes nna_npy_prefix looks at, at most */

enum nna_elem { NNA_U8, NNA_I8, NNA_I16, NNA_I32, NNA_I64, NNA_F32, NNA_F64 };

/* What a header says about the data that follows it. */
struct nna_header {
    int rank;                    /* 1 to NNA_MAX_RANK (a .npy scalar is shape (1,)) */
    uint64_t dims[NNA_MAX_RANK]; /* each > 0 */
    enum nna_elem elem;
    int elem_size;               /* bytes */
    int big_endian;              /* IDX is big-endian, .npy little-endian */
    const char *type;            /* for messages: "ubyte" (IDX), "'<f4'" (.npy) */
    uint64_t header_bytes;       /* where the data starts */
    uint64_t count;              /* product of dims */
    uint64_t data_bytes;         /* count * elem_size */
};

/* IDX: the 4-byte prefix (00 00, a type byte, a dimension count) of the
 * len bytes at b.  Sets elem, elem_size, big_endian, type, rank and
 * header_bytes.  0, or -1 with err set (a file shorter than 4 bytes too). */
int nna_idx_prefix(const unsigned char *b, size_t len, struct nna_header *h, char *err,
                   size_t err_size);
/* IDX: the whole header, from the start of the file's len bytes at b (the
 * data may follow).  Sets everything.  0, or -1 with err set. */
int nna_idx_header(const unsigned char *b, size_t len, struct nna_header *h, char *err,
                   size_t err_size);

/* .npy: the magic, the version and the header length, from the first
 * min(len, NNA_NPY_PREFIX) bytes at b of a file of file_size bytes.  Sets
 * header_bytes (the header must end inside the file).  0, or -1. */
int nna_npy_prefix(const unsigned char *b, size_t len, uint64_t file_size, struct nna_header *h,
                   char *err, size_t err_size);
/* .npy: the whole header (the dict of 'descr', 'fortran_order' and
 * 'shape'), from the start of the file's len bytes at b (the data may
 * follow).  Accepts '<f4', '<f8', '|u1' (or '<u1') and '<i8' in C order.
 * Sets everything.  0, or -1 with err set. */
int nna_npy_header(const unsigned char *b, size_t len, struct nna_header *h, char *err,
                   size_t err_size);

/* Checks that avail bytes after the header are exactly the data: a
 * "truncated data" or "trailing bytes" message otherwise.  0, or -1. */
int nna_check_data(const struct nna_header *h, uint64_t avail, char *err, size_t err_size);

/* Converts n elements at p (n * elem_size bytes) to float into out, or,
 * when out is NULL, to double into dout (exact for every IDX type: labels
 * keep their value).  One loop per type, so loaders can call it per chunk. */
void nna_decode_elems(const struct nna_header *h, const unsigned char *p, size_t n, float *out,
                      double *dout);

#endif
