/*
 * deploy_read.c - the standalone deployment program's input readers: NumPy
 * .npy, IDX and raw float32, each possibly gzip-compressed, decoded as the
 * bytes arrive into float32 rows, and the check of their shape against the
 * model's input.
 *
 * The formats themselves are parsed by formats.c, the same source libnncc's
 * loaders use; this file picks the format, streams gzip through
 * deploy_inflate.c, and turns a checked header into an nna_array.  The
 * reader is a sink: bytes are gathered until the header is complete (at
 * most NNA_NPY_PREFIX + NNA_NPY_MAX_HEADER), checked at once, then every
 * element is decoded straight into the array, which is allocated whole when
 * the file's size is known (the size was checked against the header first)
 * and grown as data arrives otherwise, never past the declared count: a
 * gzip bomb is refused at its first byte beyond what its header declares,
 * and one whose header declares more than its compressed size can expand
 * to, before anything is allocated.
 * Contract (see deploy.h): nothing is read outside the source's bytes; the
 * data must fill the rest of the file exactly (a short file is "truncated",
 * a long one has "trailing bytes").  No global mutable state.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "deploy.h"

#define NNA_GZ_MAX_RATIO 1100 /* DEFLATE expands at most about 1032:1 */
#define NNA_MIN_GROW 65536    /* floats allocated first when the size is not known */

void nna_array_free(struct nna_array *a)
{
    free(a->data);
    memset(a, 0, sizeof *a);
}

struct reader {
    enum nna_format fmt;
    long row_floats;
    uint64_t size;      /* the (decompressed) file's size, or NNA_SIZE_UNKNOWN */
    uint64_t limit;     /* at most this many bytes out of a gzip stream */
    uint64_t out;       /* bytes seen */
    const char *what;   /* the format, for messages */
    unsigned char *head;
    size_t hlen, hcap;
    int ready;          /* the header is checked */
    struct nna_header h;
    uint64_t seen;      /* data bytes after the header */
    unsigned char part[8];
    int npart;          /* bytes of an element split between chunks */
    uint64_t cap;       /* floats allocated */
    struct nna_array *a;
};

/* Room for n more floats after idx; NNA_EMEM when memory runs out. */
static int reserve(struct reader *r, uint64_t idx, uint64_t n, char *err, size_t err_size)
{
    if (idx + n <= r->cap)
        return 0;
    uint64_t max = r->fmt == NNA_RAW ? UINT64_MAX / 8 : r->h.count;
    uint64_t cap = r->cap * 2 > idx + n ? r->cap * 2 : idx + n;
    if (cap < NNA_MIN_GROW)
        cap = NNA_MIN_GROW;
    if (cap > max)
        cap = max;
    float *p = cap <= SIZE_MAX / sizeof(float) ? realloc(r->a->data, (size_t)cap * sizeof(float))
                                               : NULL;
    if (!p) {
        snprintf(err, err_size, "%s: out of memory for %llu values", r->what,
                 (unsigned long long)cap);
        return NNA_EMEM;
    }
    r->a->data = p;
    r->cap = cap;
    return 0;
}

/* Decodes n whole elements at p into the array. */
static int put_elems(struct reader *r, const unsigned char *p, uint64_t n, char *err,
                     size_t err_size)
{
    uint64_t idx = r->seen / (uint64_t)r->h.elem_size;
    int rc = reserve(r, idx, n, err, err_size);
    if (rc)
        return rc;
    nna_decode_elems(&r->h, p, (size_t)n, r->a->data + idx, NULL);
    r->seen += n * (uint64_t)r->h.elem_size;
    return 0;
}

static int raw_rows_error(const struct reader *r, uint64_t len, char *err, size_t err_size)
{
    uint64_t row = (uint64_t)r->row_floats * 4;
    snprintf(err, err_size, "raw float32: %llu bytes is not a whole number of rows of %ld "
             "floats (%llu bytes): truncated or not raw float32", (unsigned long long)len,
             r->row_floats, (unsigned long long)row);
    return -1;
}

/* The data bytes after the header. */
static int data(struct reader *r, const unsigned char *p, size_t n, char *err, size_t err_size)
{
    const uint64_t es = (uint64_t)r->h.elem_size;
    if (r->fmt != NNA_RAW && n > r->h.data_bytes - r->seen - (uint64_t)r->npart) {
        char dims[NNA_MAX_RANK * 24] = "";
        for (int i = 0, k = 0; i < r->h.rank && k < (int)sizeof dims; i++)
            k += snprintf(dims + k, sizeof dims - (size_t)k, "%s%llu", i ? " x " : "",
                          (unsigned long long)r->h.dims[i]);
        snprintf(err, err_size,
                 "%s: trailing bytes: the data runs past the %llu bytes the header declares "
                 "(%s %s elements after the %llu-byte header): refused at the first extra byte",
                 r->what, (unsigned long long)r->h.data_bytes, dims, r->h.type,
                 (unsigned long long)r->h.header_bytes);
        return -1;
    }
    while (r->npart && n) { /* finish an element split between chunks */
        r->part[r->npart++] = *p++;
        n--;
        if ((uint64_t)r->npart == es) {
            r->npart = 0;
            int rc = put_elems(r, r->part, 1, err, err_size);
            if (rc)
                return rc;
        }
    }
    uint64_t k = n / es;
    if (k) {
        int rc = put_elems(r, p, k, err, err_size);
        if (rc)
            return rc;
    }
    for (size_t i = (size_t)(k * es); i < n; i++)
        r->part[r->npart++] = p[i];
    return 0;
}

/* Checks the header once its bytes are in (or the stream ended: then what
 * is there must do).  0 while waiting for more, 1 when ready, or < 0. */
static int header(struct reader *r, int ended, char *err, size_t err_size)
{
    const unsigned char *b = r->head;
    size_t len = r->hlen;
    char why[512];
    int rc;
    if (!ended && len < NNA_NPY_PREFIX)
        return 0;
    int npy = len >= 6 && memcmp(b, "\x93NUMPY", 6) == 0;
    int idx = len >= 4 && b[0] == 0 && b[1] == 0;
    if (r->fmt == NNA_NPY || (r->fmt == NNA_AUTO && npy)) {
        r->what = "npy";
        rc = nna_npy_prefix(b, len < NNA_NPY_PREFIX ? len : NNA_NPY_PREFIX,
                            ended ? len : r->size, &r->h, why, sizeof why);
        if (!rc && len < r->h.header_bytes)
            return 0;
        rc = rc ? rc : nna_npy_header(b, (size_t)r->h.header_bytes, &r->h, why, sizeof why);
    } else if (r->fmt == NNA_IDX || (r->fmt == NNA_AUTO && idx)) {
        r->what = "IDX";
        rc = nna_idx_prefix(b, len, &r->h, why, sizeof why);
        if (!rc && len < r->h.header_bytes && !ended)
            return 0;
        rc = rc ? rc : nna_idx_header(b, len, &r->h, why, sizeof why);
    } else {
        snprintf(err, err_size, "unknown format: not .npy, IDX or gzip (--format raw reads raw "
                 "little-endian float32)");
        return -1;
    }
    if (!rc && r->size != NNA_SIZE_UNKNOWN)
        rc = nna_check_data(&r->h, r->size - r->h.header_bytes, why, sizeof why);
    if (!rc && r->limit && r->h.data_bytes > r->limit) {
        snprintf(why, sizeof why, "the header declares %llu data bytes, more than a gzip "
                 "stream of this size can hold (DEFLATE expands at most about 1032:1): corrupt "
                 "header or a gzip bomb", (unsigned long long)r->h.data_bytes);
        rc = -1;
    }
    if (rc) {
        snprintf(err, err_size, "%s: %s", r->what, why);
        return -1;
    }
    r->ready = 1;
    r->a->rank = r->h.rank;
    memcpy(r->a->dims, r->h.dims, sizeof r->a->dims);
    r->a->count = r->h.count;
    r->a->u8 = r->h.elem == NNA_U8;
    if (r->size != NNA_SIZE_UNKNOWN && (rc = reserve(r, 0, r->h.count, err, err_size)))
        return rc; /* the size was checked: allocate it whole */
    size_t hb = (size_t)r->h.header_bytes;
    rc = data(r, b + hb, len - hb, err, err_size);
    free(r->head);
    r->head = NULL;
    r->hlen = r->hcap = 0;
    return rc ? rc : 1;
}

/* The sink: header bytes gathered, then data decoded. */
static int take(void *ctx, const unsigned char *p, size_t n, char *err, size_t err_size)
{
    struct reader *r = ctx;
    if (r->limit && n > r->limit - r->out) {
        snprintf(err, err_size, "corrupt gzip data: decompressed data larger than the limit "
                 "(%llu bytes, 1100 times the compressed size)", (unsigned long long)r->limit);
        return -1;
    }
    r->out += n;
    if (r->ready)
        return data(r, p, n, err, err_size);
    /* Gather at most what the header needs now (its prefix, then its length). */
    while (n && !r->ready) {
        size_t want = NNA_NPY_PREFIX;
        if (r->hlen >= NNA_NPY_PREFIX && r->head[0] == 0x93 && r->hlen >= 10) {
            uint64_t hb = r->head[6] == 1 ? 10 + (r->head[8] | (uint64_t)r->head[9] << 8)
                                          : 12 + (r->head[8] | (uint64_t)r->head[9] << 8 |
                                                  (uint64_t)r->head[10] << 16 |
                                                  (uint64_t)r->head[11] << 24);
            want = hb < NNA_NPY_PREFIX + NNA_NPY_MAX_HEADER ? (size_t)hb
                                                            : NNA_NPY_PREFIX + NNA_NPY_MAX_HEADER;
        } else if (r->hlen >= NNA_NPY_PREFIX && r->head[0] == 0) {
            want = 4 + 4 * (size_t)r->head[3];
        }
        if (want < r->hlen + 1)
            want = r->hlen + 1; /* header() decides; never stall */
        size_t k = want - r->hlen < n ? want - r->hlen : n;
        if (r->hlen + k > r->hcap) {
            size_t cap = r->hlen + k < 4096 ? 4096 : r->hlen + k;
            unsigned char *q = realloc(r->head, cap);
            if (!q) {
                snprintf(err, err_size, "out of memory");
                return NNA_EMEM;
            }
            r->head = q;
            r->hcap = cap;
        }
        memcpy(r->head + r->hlen, p, k);
        r->hlen += k;
        p += k;
        n -= k;
        int rc = header(r, 0, err, err_size);
        if (rc < 0)
            return rc;
    }
    return n ? data(r, p, n, err, err_size) : 0;
}

/* The end of the stream: the header must be there and the data complete. */
static int finish(struct reader *r, char *err, size_t err_size)
{
    if (!r->ready) {
        int rc = header(r, 1, err, err_size);
        if (rc < 0)
            return rc;
    }
    if (r->fmt == NNA_RAW) {
        uint64_t row = (uint64_t)r->row_floats * 4;
        if (r->row_floats < 1 || r->seen == 0 || r->seen % row || r->npart)
            return raw_rows_error(r, r->seen + (uint64_t)r->npart, err, err_size);
        r->a->rank = 2;
        r->a->dims[0] = r->seen / row;
        r->a->dims[1] = (uint64_t)r->row_floats;
        r->a->count = r->seen / 4;
        return 0;
    }
    char why[512];
    if (nna_check_data(&r->h, r->seen + (uint64_t)r->npart, why, sizeof why)) {
        snprintf(err, err_size, "%s: %s", r->what, why);
        return -1;
    }
    return 0;
}

int nna_read(struct nna_src *src, uint64_t size, enum nna_format fmt, long row_floats,
             struct nna_array *a, char *err, size_t err_size)
{
    memset(a, 0, sizeof *a);
    struct reader r = {.fmt = fmt, .row_floats = row_floats, .size = size, .a = a};
    if (fmt == NNA_RAW) { /* no header: rows of row_floats little-endian floats */
        r.what = "raw float32";
        r.ready = 1;
        r.h = (struct nna_header){.rank = 2, .elem = NNA_F32, .elem_size = 4, .type = "float32"};
    }
    int rc = 0, c0 = nna_src_byte(src), c1 = c0 == 0x1f ? nna_src_byte(src) : -1;
    int gz = c0 == 0x1f && c1 == 0x8b;
    if (fmt == NNA_RAW && !gz && (row_floats < 1 || (size != NNA_SIZE_UNKNOWN &&
                                  (size == 0 || size % ((uint64_t)row_floats * 4)))))
        return raw_rows_error(&r, size == NNA_SIZE_UNKNOWN ? 0 : size, err, err_size);
    if (gz) {
        /* The output's size is not known; a known compressed size bounds it. */
        r.size = NNA_SIZE_UNKNOWN;
        if (size != NNA_SIZE_UNKNOWN)
            r.limit = size < (UINT64_MAX - 4096) / NNA_GZ_MAX_RATIO
                          ? size * NNA_GZ_MAX_RATIO + 4096
                          : UINT64_MAX;
        rc = nna_gunzip_stream(src, 1, take, &r, err, err_size);
    } else {
        unsigned char first[2] = {(unsigned char)c0, (unsigned char)c1};
        if (c0 >= 0)
            rc = take(&r, first, c1 >= 0 ? 2 : 1, err, err_size);
        for (int c; !rc && (c = nna_src_byte(src)) >= 0;) { /* then chunk by chunk */
            unsigned char one = (unsigned char)c;
            rc = take(&r, &one, 1, err, err_size);
            if (!rc && src->pos < src->len) {
                rc = take(&r, src->p + src->pos, src->len - src->pos, err, err_size);
                src->pos = src->len;
            }
        }
    }
    if (!rc && src->error) {
        snprintf(err, err_size, "read error");
        rc = -1;
    }
    if (!rc)
        rc = finish(&r, err, err_size);
    free(r.head);
    if (rc)
        nna_array_free(a);
    return rc;
}

int nna_decode(const unsigned char *buf, size_t len, enum nna_format fmt, long row_floats,
               struct nna_array *a, char *err, size_t err_size)
{
    struct nna_src src = {.p = buf, .len = len};
    return nna_read(&src, len, fmt, row_floats, a, err, err_size);
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
