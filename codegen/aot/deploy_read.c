/*
 * deploy_read.c - the standalone deployment program's input readers: NumPy
 * .npy, IDX (as MNIST and Fashion-MNIST ship) and raw float32, each possibly
 * gzip-compressed, decoded from bytes already in memory into float32 rows.
 *
 * Contract (see deploy.h): nothing is read outside [buf, buf + len); every
 * size a header claims is checked, with overflow checks, against the bytes
 * that are there, and the data must fill the rest of the file exactly (a
 * short file is "truncated", a long one has "trailing bytes").  Multi-byte
 * values are assembled byte by byte, so the host's byte order and the data's
 * alignment do not matter.  No global mutable state.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "deploy.h"

#define NNA_MAX_DIM ((uint64_t)1 << 40)

void nna_array_free(struct nna_array *a)
{
    free(a->data);
    memset(a, 0, sizeof *a);
}

enum elem { E_U8, E_I8, E_I16, E_I32, E_I64, E_F32, E_F64 };
static const size_t elem_size[] = {1, 1, 2, 4, 8, 4, 8};

static uint64_t get_uint(const unsigned char *p, size_t n, int big)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v |= (uint64_t)p[big ? i : n - 1 - i] << (8 * (n - 1 - i));
    return v;
}

static float convert(const unsigned char *p, enum elem e, int big)
{
    uint64_t u = get_uint(p, elem_size[e], big);
    switch (e) {
    case E_U8:
        return (float)u;
    case E_I8:
        return (float)(int8_t)(uint8_t)u;
    case E_I16:
        return (float)(int16_t)(uint16_t)u;
    case E_I32:
        return (float)(int32_t)(uint32_t)u;
    case E_I64:
        return (float)(int64_t)u;
    case E_F32: {
        uint32_t b = (uint32_t)u;
        float f;
        memcpy(&f, &b, sizeof f);
        return f;
    }
    case E_F64: {
        double d;
        memcpy(&d, &u, sizeof d);
        return (float)d;
    }
    }
    return 0;
}

/* Fills a from `count` elements at p, which hold exactly `avail` bytes. */
static int fill(struct nna_array *a, const unsigned char *p, size_t avail, enum elem e, int big,
                const char *what, char *err, size_t err_size)
{
    uint64_t count = 1;
    for (int i = 0; i < a->rank; i++) {
        if (a->dims[i] == 0) {
            snprintf(err, err_size, "%s: dimension %d is 0 (no values)", what, i);
            return -1;
        }
        if (a->dims[i] > NNA_MAX_DIM || (a->dims[i] && count > UINT64_MAX / a->dims[i])) {
            snprintf(err, err_size, "%s: dimension %d (%llu) is absurd", what, i,
                     (unsigned long long)a->dims[i]);
            return -1;
        }
        count *= a->dims[i];
    }
    uint64_t need = count; /* bytes, checked against avail before any use */
    if (count > (uint64_t)SIZE_MAX / 8 || (need = count * elem_size[e]) > avail) {
        snprintf(err, err_size, "%s: truncated: the header promises %llu values (%llu bytes) but "
                 "%zu bytes follow it", what, (unsigned long long)count,
                 (unsigned long long)(count <= UINT64_MAX / 8 ? count * elem_size[e] : count),
                 avail);
        return -1;
    }
    if (need < avail) {
        snprintf(err, err_size, "%s: trailing bytes: %llu values need %llu bytes but %zu follow "
                 "the header", what, (unsigned long long)count, (unsigned long long)need, avail);
        return -1;
    }
    a->count = count;
    a->u8 = e == E_U8;
    a->data = malloc(count ? (size_t)count * sizeof(float) : 1);
    if (!a->data) {
        snprintf(err, err_size, "%s: out of memory for %llu values", what,
                 (unsigned long long)count);
        return -1;
    }
    for (uint64_t i = 0; i < count; i++)
        a->data[i] = convert(p + i * elem_size[e], e, big);
    return 0;
}

/* ---- IDX ---------------------------------------------------------------- */

static int decode_idx(const unsigned char *b, size_t len, struct nna_array *a, char *err,
                      size_t err_size)
{
    static const struct {
        unsigned char code;
        enum elem e;
    } types[] = {{0x08, E_U8}, {0x09, E_I8}, {0x0b, E_I16}, {0x0c, E_I32},
                 {0x0d, E_F32}, {0x0e, E_F64}};
    int t = -1;
    for (int i = 0; i < 6; i++)
        if (b[2] == types[i].code)
            t = i;
    if (t < 0) {
        snprintf(err, err_size, "IDX: unknown data type 0x%02x", b[2]);
        return -1;
    }
    int rank = b[3];
    if (rank < 1 || rank > NNA_MAX_RANK) {
        snprintf(err, err_size, "IDX: rank %d is not in [1, %d]", rank, NNA_MAX_RANK);
        return -1;
    }
    size_t head = 4 + 4 * (size_t)rank;
    if (len < head) {
        snprintf(err, err_size, "IDX: truncated header (%zu bytes, %zu needed)", len, head);
        return -1;
    }
    a->rank = rank;
    for (int i = 0; i < rank; i++)
        a->dims[i] = get_uint(b + 4 + 4 * i, 4, 1);
    return fill(a, b + head, len - head, types[t].e, 1, "IDX", err, err_size);
}

/* ---- NPY ---------------------------------------------------------------- */

struct cursor {
    const char *p, *end;
};

static void skip_space(struct cursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static int eat(struct cursor *c, char ch)
{
    skip_space(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return 1;
    }
    return 0;
}

/* A quoted Python string into out (at most size - 1 characters). */
static int quoted(struct cursor *c, char *out, size_t size)
{
    skip_space(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"'))
        return 0;
    char q = *c->p++;
    size_t n = 0;
    while (c->p < c->end && *c->p != q) {
        if (n + 1 >= size)
            return 0;
        out[n++] = *c->p++;
    }
    if (c->p >= c->end)
        return 0;
    c->p++;
    out[n] = '\0';
    return 1;
}

static int word(struct cursor *c, const char *w)
{
    skip_space(c);
    size_t n = strlen(w);
    if ((size_t)(c->end - c->p) >= n && memcmp(c->p, w, n) == 0) {
        c->p += n;
        return 1;
    }
    return 0;
}

static int parse_npy_header(struct cursor *c, char *descr, size_t dsize, int *fortran,
                            struct nna_array *a)
{
    int seen_descr = 0, seen_order = 0, seen_shape = 0;
    if (!eat(c, '{'))
        return 0;
    while (!eat(c, '}')) {
        char key[32];
        if (!quoted(c, key, sizeof key) || !eat(c, ':'))
            return 0;
        if (strcmp(key, "descr") == 0 && !seen_descr) {
            if (!quoted(c, descr, dsize))
                return 0;
            seen_descr = 1;
        } else if (strcmp(key, "fortran_order") == 0 && !seen_order) {
            if (word(c, "True"))
                *fortran = 1;
            else if (word(c, "False"))
                *fortran = 0;
            else
                return 0;
            seen_order = 1;
        } else if (strcmp(key, "shape") == 0 && !seen_shape) {
            if (!eat(c, '('))
                return 0;
            a->rank = 0;
            while (!eat(c, ')')) {
                skip_space(c);
                uint64_t v = 0;
                int digits = 0;
                while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
                    if (v > NNA_MAX_DIM)
                        return 0;
                    v = v * 10 + (uint64_t)(*c->p++ - '0');
                    digits++;
                }
                word(c, "L"); /* Python 2 longs */
                if (!digits || a->rank == NNA_MAX_RANK)
                    return 0;
                a->dims[a->rank++] = v;
                if (!eat(c, ',')) { /* "(3)" is an int, not a tuple: Python writes "(3,)" */
                    if (a->rank == 1 || !eat(c, ')'))
                        return 0;
                    break;
                }
            }
            seen_shape = 1;
        } else {
            return 0;
        }
        if (!eat(c, ',')) {
            if (!eat(c, '}'))
                return 0;
            break;
        }
    }
    return seen_descr && seen_order && seen_shape;
}

static int decode_npy(const unsigned char *b, size_t len, struct nna_array *a, char *err,
                      size_t err_size)
{
    if (len < 10) {
        snprintf(err, err_size, "npy: truncated header");
        return -1;
    }
    int major = b[6];
    size_t hlen, start;
    if (major == 1) {
        hlen = (size_t)get_uint(b + 8, 2, 0);
        start = 10;
    } else if (major == 2 || major == 3) {
        if (len < 12) {
            snprintf(err, err_size, "npy: truncated header");
            return -1;
        }
        hlen = (size_t)get_uint(b + 8, 4, 0);
        start = 12;
    } else {
        snprintf(err, err_size, "npy: unknown format version %d", major);
        return -1;
    }
    if (hlen > len - start) {
        snprintf(err, err_size, "npy: truncated header (%zu bytes promised, %zu there)", hlen,
                 len - start);
        return -1;
    }
    struct cursor c = {(const char *)b + start, (const char *)b + start + hlen};
    char descr[16];
    int fortran = 0;
    if (!parse_npy_header(&c, descr, sizeof descr, &fortran, a)) {
        snprintf(err, err_size, "npy: malformed header dictionary");
        return -1;
    }
    if (fortran) {
        snprintf(err, err_size, "npy: Fortran-ordered arrays are not supported");
        return -1;
    }
    static const struct {
        const char *descr;
        enum elem e;
    } types[] = {{"<f4", E_F32}, {"<f8", E_F64}, {"|u1", E_U8}, {"<u1", E_U8}, {"<i8", E_I64}};
    for (size_t i = 0; i < sizeof types / sizeof *types; i++)
        if (strcmp(descr, types[i].descr) == 0)
            return fill(a, b + start + hlen, len - start - hlen, types[i].e, 0, "npy", err,
                        err_size);
    snprintf(err, err_size, "npy: unsupported dtype '%s' (supported: '<f4', '<f8', '|u1', "
             "'<i8')", descr);
    return -1;
}

/* ---- Dispatch ----------------------------------------------------------- */

static int decode_plain(const unsigned char *b, size_t len, enum nna_format fmt, long row_floats,
                        struct nna_array *a, char *err, size_t err_size)
{
    int npy = len >= 6 && memcmp(b, "\x93NUMPY", 6) == 0;
    int idx = len >= 4 && b[0] == 0 && b[1] == 0;
    if (fmt == NNA_NPY || (fmt == NNA_AUTO && npy)) {
        if (!npy) {
            snprintf(err, err_size, "not a .npy file (no \\x93NUMPY magic)");
            return -1;
        }
        return decode_npy(b, len, a, err, err_size);
    }
    if (fmt == NNA_IDX || (fmt == NNA_AUTO && idx)) {
        if (!idx) {
            snprintf(err, err_size, "not an IDX file (no 0x0000 magic)");
            return -1;
        }
        return decode_idx(b, len, a, err, err_size);
    }
    if (fmt == NNA_RAW) {
        size_t row = (size_t)row_floats * 4;
        if (row_floats < 1 || len == 0 || len % row) {
            snprintf(err, err_size, "raw float32: %zu bytes is not a whole number of rows of %ld "
                     "floats (%zu bytes): truncated or not raw float32", len, row_floats, row);
            return -1;
        }
        a->rank = 2;
        a->dims[0] = len / row;
        a->dims[1] = (uint64_t)row_floats;
        return fill(a, b, len, E_F32, 0, "raw float32", err, err_size);
    }
    snprintf(err, err_size, "unknown format: not .npy, IDX or gzip (--format raw reads raw "
             "little-endian float32)");
    return -1;
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
