/*
 * deploy_read.c - the standalone deployment program's input readers: NumPy
 * .npy, IDX and raw float32, each possibly gzip-compressed, decoded from
 * bytes already in memory into float32 rows, and the check of their shape
 * against the model's input.
 *
 * The formats themselves are parsed by formats.c, the same source libnncc's
 * loaders use; this file only picks the format, inflates gzip
 * (deploy_inflate.c), and turns a checked header into an nna_array.
 * Contract (see deploy.h): nothing is read outside [buf, buf + len); the
 * data must fill the rest of the file exactly (a short file is "truncated",
 * a long one has "trailing bytes").  No global mutable state.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "deploy.h"

void nna_array_free(struct nna_array *a)
{
    free(a->data);
    memset(a, 0, sizeof *a);
}

/* Fills a from the checked header h of the len bytes at b; `what` names
 * the format in messages. */
static int fill(const struct nna_header *h, const unsigned char *b, size_t len, const char *what,
                struct nna_array *a, char *err, size_t err_size)
{
    char why[512];
    if (nna_check_data(h, len - h->header_bytes, why, sizeof why)) {
        snprintf(err, err_size, "%s: %s", what, why);
        return -1;
    }
    a->data = h->count <= SIZE_MAX / sizeof(float) ? malloc((size_t)h->count * sizeof(float))
                                                    : NULL;
    if (!a->data) {
        snprintf(err, err_size, "%s: out of memory for %llu values", what,
                 (unsigned long long)h->count);
        return -1;
    }
    a->rank = h->rank;
    memcpy(a->dims, h->dims, sizeof a->dims);
    a->count = h->count;
    a->u8 = h->elem == NNA_U8;
    nna_decode_elems(h, b + h->header_bytes, (size_t)h->count, a->data, NULL);
    return 0;
}

static int decode_plain(const unsigned char *b, size_t len, enum nna_format fmt, long row_floats,
                        struct nna_array *a, char *err, size_t err_size)
{
    int npy = len >= 6 && memcmp(b, "\x93NUMPY", 6) == 0;
    int idx = len >= 4 && b[0] == 0 && b[1] == 0;
    struct nna_header h;
    char why[512];
    const char *what;
    int rc;
    if (fmt == NNA_NPY || (fmt == NNA_AUTO && npy)) {
        what = "npy";
        rc = nna_npy_header(b, len, &h, why, sizeof why);
    } else if (fmt == NNA_IDX || (fmt == NNA_AUTO && idx)) {
        what = "IDX";
        rc = nna_idx_header(b, len, &h, why, sizeof why);
    } else if (fmt == NNA_RAW) {
        size_t row = (size_t)row_floats * 4;
        if (row_floats < 1 || len == 0 || len % row) {
            snprintf(err, err_size, "raw float32: %zu bytes is not a whole number of rows of %ld "
                     "floats (%zu bytes): truncated or not raw float32", len, row_floats, row);
            return -1;
        }
        /* What a header would say: rows of row_floats little-endian floats. */
        h = (struct nna_header){.rank = 2, .dims = {len / row, (uint64_t)row_floats},
                                .elem = NNA_F32, .elem_size = 4, .type = "float32",
                                .count = len / 4, .data_bytes = len};
        return fill(&h, b, len, "raw float32", a, err, err_size);
    } else {
        snprintf(err, err_size, "unknown format: not .npy, IDX or gzip (--format raw reads raw "
                 "little-endian float32)");
        return -1;
    }
    if (rc) {
        snprintf(err, err_size, "%s: %s", what, why);
        return -1;
    }
    return fill(&h, b, len, what, a, err, err_size);
}

int nna_decode(const unsigned char *buf, size_t len, enum nna_format fmt, long row_floats,
               struct nna_array *a, char *err, size_t err_size)
{
    memset(a, 0, sizeof *a);
    if (len >= 2 && buf[0] == 0x1f && buf[1] == 0x8b) {
        unsigned char *plain = NULL;
        size_t plain_len = 0;
        /* DEFLATE expands at most about 1032:1. */
        size_t max_out = len < ((size_t)1 << 40) / 1100 ? len * 1100 + 4096 : (size_t)1 << 40;
        if (max_out > SIZE_MAX / 2)
            max_out = SIZE_MAX / 2;
        if (nna_gunzip(buf, len, max_out, &plain, &plain_len, err, err_size))
            return -1;
        int rc = decode_plain(plain ? plain : (const unsigned char *)"", plain_len, fmt,
                              row_floats, a, err, err_size);
        free(plain);
        if (rc)
            nna_array_free(a);
        return rc;
    }
    int rc = decode_plain(buf, len, fmt, row_floats, a, err, err_size);
    if (rc)
        nna_array_free(a);
    return rc;
}

/* ---- Shapes ------------------------------------------------------------- */

static int squeeze_eq(const uint64_t *a, int na, const long *b, int nb)
{
    int i = 0, j = 0;
    for (;;) {
        while (i < na && a[i] == 1)
            i++;
        while (j < nb && b[j] == 1)
            j++;
        if (i == na || j == nb)
            return i == na && j == nb;
        if (a[i] != (uint64_t)b[j])
            return 0;
        i++, j++;
    }
}

uint64_t nna_match_rows(const struct nna_array *a, int rank, const long *dims, char *err,
                        size_t err_size)
{
    uint64_t rows = 0, size = 1;
    for (int i = 0; i < rank; i++)
        size *= (uint64_t)dims[i];
    if (a->rank >= 1 && squeeze_eq(a->dims + 1, a->rank - 1, dims, rank))
        rows = a->dims[0];
    else if (a->rank == 2 && a->dims[1] == size)
        rows = a->dims[0]; /* flattened rows (raw float32 is read so) */
    else if (squeeze_eq(a->dims, a->rank, dims, rank))
        rows = 1; /* one sample without a batch axis */
    else {
        char have[200], want[200];
        size_t h = 0, w = 0;
        h += (size_t)snprintf(have, sizeof have, "(");
        for (int i = 0; i < a->rank && h < sizeof have; i++)
            h += (size_t)snprintf(have + h, sizeof have - h, "%s%llu", i ? ", " : "",
                                  (unsigned long long)a->dims[i]);
        if (h < sizeof have)
            snprintf(have + h, sizeof have - h, ")");
        w += (size_t)snprintf(want, sizeof want, "(n");
        for (int i = 0; i < rank && w < sizeof want; i++)
            w += (size_t)snprintf(want + w, sizeof want - w, ", %ld", dims[i]);
        if (w < sizeof want)
            snprintf(want + w, sizeof want - w, ")");
        snprintf(err, err_size, "wrong shape: the input is %s but the model takes %s", have,
                 want);
        return 0;
    }
    if (rows == 0)
        snprintf(err, err_size, "the input holds no samples");
    return rows;
}
