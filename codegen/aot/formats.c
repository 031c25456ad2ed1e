/*
 * formats.c - IDX and .npy headers checked, and their elements decoded,
 * from bytes in memory: the single implementation that libnncc's loaders
 * (runtime/io/data_idx.c, data_npy.c) and the standalone deployment
 * program (deploy_read.c, which gets this file as embedded text) share.
 * See formats.h for the contract and for why the file lives in codegen/aot/.
 *
 * IDX: two zero bytes, a type byte (0x08 ubyte, 0x09 sbyte, 0x0B short,
 * 0x0C int, 0x0D float, 0x0E double), a byte counting the dimensions, one
 * big-endian u32 per dimension, then the elements, big-endian, row-major.
 *
 * .npy: the magic "\x93NUMPY", a major and minor version byte, the header
 * length (little-endian u16 in version 1.0, u32 in 2.0 and 3.0), the header
 * -- a Python dict literal such as
 *     {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }
 * padded with spaces and ended by '\n' -- and the elements in C order.  The
 * dict is parsed strictly: exactly the three keys (any order, any
 * whitespace, a trailing comma allowed), quoted with ' or " and without
 * escapes, nothing after the closing brace but padding.
 */
#include <stdio.h>
#include <string.h>
#include "formats.h"

/* The element count times 8 (the widest element) fits an int64_t, so
 * callers may compute byte sizes in int64_t as well as in uint64_t. */
#define NNA_MAX_COUNT ((uint64_t)INT64_MAX / 8)
#define NNA_STR_(x) #x
#define NNA_STR(x) NNA_STR_(x)

static const int elem_sizes[] = {1, 1, 2, 4, 8, 4, 8}; /* by enum nna_elem */

static void set_elem(struct nna_header *h, enum nna_elem e, int big_endian, const char *type)
{
    h->elem = e;
    h->elem_size = elem_sizes[e];
    h->big_endian = big_endian;
    h->type = type;
}

static uint64_t get_uint(const unsigned char *p, int n, int big_endian)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[big_endian ? i : n - 1 - i];
    return v;
}

/* Two's complement of `bits` bits, without implementation-defined casts. */
static int64_t to_signed(uint64_t u, int bits)
{
    uint64_t sign = (uint64_t)1 << (bits - 1);
    return u & sign ? -(int64_t)(~u & (sign - 1)) - 1 : (int64_t)u;
}

static float f32_bits(uint64_t u)
{
    uint32_t b = (uint32_t)u;
    float f;
    memcpy(&f, &b, sizeof f);
    return f;
}

static double f64_bits(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

/* "2 x 3 x 4", for messages. */
static void dims_text(const struct nna_header *h, char *buf, size_t size)
{
    size_t n = 0;
    buf[0] = '\0';
    for (int i = 0; i < h->rank && n < size; i++)
        n += (size_t)snprintf(buf + n, size - n, "%s%llu", i ? " x " : "",
                              (unsigned long long)h->dims[i]);
}

/* Sets count and data_bytes: every dimension positive, no overflow. */
static int count_elems(struct nna_header *h, char *err, size_t err_size)
{
    char dims[NNA_MAX_RANK * 24];
    dims_text(h, dims, sizeof dims);
    h->count = 1;
    for (int i = 0; i < h->rank; i++) {
        if (h->dims[i] == 0) {
            snprintf(err, err_size, "dimension %d of %s is 0: empty arrays are not supported", i,
                     dims);
            return -1;
        }
        if (h->count > NNA_MAX_COUNT / h->dims[i]) {
            snprintf(err, err_size, "dimension overflow: the element count of %s overflows", dims);
            return -1;
        }
        h->count *= h->dims[i];
    }
    h->data_bytes = h->count * (uint64_t)h->elem_size;
    return 0;
}

int nna_check_data(const struct nna_header *h, uint64_t avail, char *err, size_t err_size)
{
    if (avail == h->data_bytes)
        return 0;
    char dims[NNA_MAX_RANK * 24];
    dims_text(h, dims, sizeof dims);
    snprintf(err, err_size,
             "%s: %s %s elements need %llu data bytes after the %llu-byte header, the file has "
             "%llu",
             avail < h->data_bytes ? "truncated data" : "trailing bytes", dims, h->type,
             (unsigned long long)h->data_bytes, (unsigned long long)h->header_bytes,
             (unsigned long long)avail);
    return -1;
}

/* ---- IDX ---------------------------------------------------------------- */

int nna_idx_prefix(const unsigned char *b, size_t len, struct nna_header *h, char *err,
                   size_t err_size)
{
    static const struct {
        unsigned char code;
        enum nna_elem elem;
        const char *name;
    } types[] = {{0x08, NNA_U8, "ubyte"}, {0x09, NNA_I8, "sbyte"},  {0x0B, NNA_I16, "short"},
                 {0x0C, NNA_I32, "int"},  {0x0D, NNA_F32, "float"}, {0x0E, NNA_F64, "double"}};
    memset(h, 0, sizeof *h);
    if (len < 4) {
        snprintf(err, err_size, "too short for an IDX header (%zu bytes)", len);
        return -1;
    }
    if (b[0] != 0 || b[1] != 0) {
        snprintf(err, err_size,
                 "bad magic %02x %02x %02x %02x (an IDX file starts with 00 00, a type byte and "
                 "a dimension count)",
                 b[0], b[1], b[2], b[3]);
        return -1;
    }
    for (size_t i = 0; i < sizeof types / sizeof *types; i++)
        if (b[2] == types[i].code)
            set_elem(h, types[i].elem, 1, types[i].name);
    if (!h->type) {
        snprintf(err, err_size,
                 "unknown type code 0x%02x (expected 0x08 ubyte, 0x09 sbyte, 0x0B short, 0x0C "
                 "int, 0x0D float or 0x0E double)",
                 b[2]);
        return -1;
    }
    h->rank = b[3];
    if (h->rank < 1 || h->rank > NNA_MAX_RANK) {
        snprintf(err, err_size, "wrong number of dimensions: %d (expected 1 to %d)", h->rank,
                 NNA_MAX_RANK);
        return -1;
    }
    h->header_bytes = 4 + 4 * (uint64_t)h->rank;
    return 0;
}

int nna_idx_header(const unsigned char *b, size_t len, struct nna_header *h, char *err,
                   size_t err_size)
{
    if (nna_idx_prefix(b, len, h, err, err_size))
        return -1;
    if (len < h->header_bytes) {
        snprintf(err, err_size, "truncated header: %d dimensions need %llu bytes, the file has %zu",
                 h->rank, (unsigned long long)h->header_bytes, len);
        return -1;
    }
    for (int i = 0; i < h->rank; i++)
        h->dims[i] = get_uint(b + 4 + 4 * i, 4, 1);
    return count_elems(h, err, err_size);
}

/* ---- .npy: the header dict ---------------------------------------------- */

struct cursor {
    const char *p, *end;
};

static void skip_space(struct cursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static int take(struct cursor *c, char ch)
{
    skip_space(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return 1;
    }
    return 0;
}

/* A quoted Python string without escapes (none of the three keys or the
 * dtypes accepted needs one) into out, at most size - 1 characters. */
static int parse_string(struct cursor *c, char *out, size_t size)
{
    skip_space(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"'))
        return 0;
    char quote = *c->p++;
    size_t n = 0;
    while (c->p < c->end && *c->p != quote) {
        if (*c->p == '\\' || *c->p == '\n' || n + 1 >= size)
            return 0;
        out[n++] = *c->p++;
    }
    if (c->p >= c->end)
        return 0;
    c->p++;
    out[n] = '\0';
    return 1;
}

static int parse_word(struct cursor *c, const char *word)
{
    skip_space(c);
    size_t n = strlen(word);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n) != 0)
        return 0;
    c->p += n;
    return 1;
}

/* A tuple of non-negative integers: (), (3,), (3, 4) or (3, 4,). */
static int parse_shape(struct cursor *c, struct nna_header *h, const char **why)
{
    *why = "the shape is not a tuple of integers";
    if (!take(c, '('))
        return 0;
    h->rank = 0;
    if (take(c, ')'))
        return 1;
    for (;;) {
        skip_space(c);
        if (c->p >= c->end || *c->p < '0' || *c->p > '9')
            return 0;
        uint64_t v = 0;
        while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
            if (v > (INT64_MAX - 9) / 10) {
                *why = "a dimension of the shape overflows";
                return 0;
            }
            v = v * 10 + (uint64_t)(*c->p++ - '0');
        }
        if (c->p < c->end && *c->p == 'L')
            c->p++; /* a Python 2 long, as old NumPy wrote */
        if (h->rank == NNA_MAX_RANK) {
            *why = "the shape has more than " NNA_STR(NNA_MAX_RANK) " dimensions";
            return 0;
        }
        h->dims[h->rank++] = v;
        int comma = take(c, ',');
        if (take(c, ')'))
            return h->rank > 1 || comma; /* (3) is an int, not a tuple */
        if (!comma)
            return 0;
    }
}

/* Parses the dict into descr, *fortran and h's shape; NULL, or a reason. */
static const char *parse_dict(const char *text, size_t len, char *descr, size_t descr_size,
                              int *fortran, struct nna_header *h)
{
    struct cursor c = {text, text + len};
    unsigned seen = 0; /* bit 0 descr, 1 fortran_order, 2 shape */
    if (!take(&c, '{'))
        return "the header is not a dict";
    for (;;) {
        if (take(&c, '}'))
            break;
        char key[32];
        if (!parse_string(&c, key, sizeof key))
            return "expected a quoted key in the header dict";
        if (!take(&c, ':'))
            return "expected ':' after a key in the header dict";
        unsigned bit;
        if (!strcmp(key, "descr")) {
            bit = 1;
            if (!parse_string(&c, descr, descr_size))
                return "'descr' is not a dtype string";
        } else if (!strcmp(key, "fortran_order")) {
            bit = 2;
            if (parse_word(&c, "True"))
                *fortran = 1;
            else if (parse_word(&c, "False"))
                *fortran = 0;
            else
                return "'fortran_order' is neither True nor False";
        } else if (!strcmp(key, "shape")) {
            bit = 4;
            const char *why;
            if (!parse_shape(&c, h, &why))
                return why;
        } else {
            return "unknown key in the header dict (expected 'descr', 'fortran_order', 'shape')";
        }
        if (seen & bit)
            return "a key appears twice in the header dict";
        seen |= bit;
        if (take(&c, '}'))
            break;
        if (!take(&c, ','))
            return "expected ',' or '}' in the header dict";
    }
    skip_space(&c); /* the padding */
    if (c.p != c.end)
        return "unexpected text after the header dict";
    if (!(seen & 1))
        return "the header has no 'descr'";
    if (!(seen & 2))
        return "the header has no 'fortran_order'";
    if (!(seen & 4))
        return "the header has no 'shape'";
    return NULL;
}

/* ---- .npy --------------------------------------------------------------- */

int nna_npy_prefix(const unsigned char *b, size_t len, uint64_t file_size, struct nna_header *h,
                   char *err, size_t err_size)
{
    memset(h, 0, sizeof *h);
    if (len < 10) {
        snprintf(err, err_size, "too short for a .npy file (%zu bytes)", len);
        return -1;
    }
    if (memcmp(b, "\x93NUMPY", 6) != 0) {
        snprintf(err, err_size, "bad magic %02x %02x %02x %02x %02x %02x (expected 93 'NUMPY')",
                 b[0], b[1], b[2], b[3], b[4], b[5]);
        return -1;
    }
    int major = b[6], minor = b[7];
    if (major < 1 || major > 3 || minor != 0) {
        snprintf(err, err_size, "unsupported version %d.%d (expected 1.0, 2.0 or 3.0)", major,
                 minor);
        return -1;
    }
    if (major > 1 && len < 12) {
        snprintf(err, err_size, "too short for a version %d.0 .npy file (%zu bytes)", major, len);
        return -1;
    }
    uint64_t preamble = major == 1 ? 10 : 12, hlen = get_uint(b + 8, major == 1 ? 2 : 4, 0);
    if (hlen > NNA_NPY_MAX_HEADER) {
        snprintf(err, err_size, "header length %llu is too large (at most %d)",
                 (unsigned long long)hlen, NNA_NPY_MAX_HEADER);
        return -1;
    }
    if (preamble + hlen > file_size) {
        snprintf(err, err_size, "header length %llu runs past the end of the file (%llu bytes)",
                 (unsigned long long)hlen, (unsigned long long)file_size);
        return -1;
    }
    h->header_bytes = preamble + hlen;
    return 0;
}

int nna_npy_header(const unsigned char *b, size_t len, struct nna_header *h, char *err,
                   size_t err_size)
{
    static const struct {
        const char *descr, *quoted;
        enum nna_elem elem;
    } types[] = {{"<f4", "'<f4'", NNA_F32}, {"<f8", "'<f8'", NNA_F64}, {"|u1", "'|u1'", NNA_U8},
                 {"<u1", "'<u1'", NNA_U8},  {"<i8", "'<i8'", NNA_I64}};
    if (nna_npy_prefix(b, len, len, h, err, err_size))
        return -1;
    size_t start = b[6] == 1 ? 10 : 12, tlen = (size_t)h->header_bytes - start;
    const char *text = (const char *)b + start;
    if (memchr(text, '\0', tlen)) {
        snprintf(err, err_size, "the header contains a NUL byte");
        return -1;
    }
    char descr[32];
    int fortran = 0;
    const char *why = parse_dict(text, tlen, descr, sizeof descr, &fortran, h);
    if (why) {
        snprintf(err, err_size, "malformed header: %s (header: %.*s)", why,
                 (int)(tlen < 200 ? tlen : 200), text);
        return -1;
    }
    for (size_t i = 0; i < sizeof types / sizeof *types && !h->type; i++)
        if (!strcmp(descr, types[i].descr))
            set_elem(h, types[i].elem, 0, types[i].quoted);
    if (!h->type) {
        snprintf(err, err_size, "dtype '%s' is not supported%s (supported: '<f4', '<f8', '|u1', "
                 "'<i8')", descr, descr[0] == '>' ? ": big-endian data" : "");
        return -1;
    }
    if (fortran) {
        snprintf(err, err_size, "Fortran order is not supported (save a C-order array)");
        return -1;
    }
    if (h->rank == 0) { /* a scalar */
        h->rank = 1;
        h->dims[0] = 1;
    }
    return count_elems(h, err, err_size);
}

/* ---- Elements ----------------------------------------------------------- */

void nna_decode_elems(const struct nna_header *h, const unsigned char *p, size_t n, float *out,
                      double *dout)
{
    const int big = h->big_endian;
    /* One loop per type and destination: nothing is decided per element. */
#define NNA_RUN(size, value)                                                                       \
    do {                                                                                           \
        if (out)                                                                                   \
            for (size_t i = 0; i < n; i++) {                                                       \
                const unsigned char *q = p + (size) * i;                                           \
                out[i] = (float)(value);                                                           \
            }                                                                                      \
        else                                                                                       \
            for (size_t i = 0; i < n; i++) {                                                       \
                const unsigned char *q = p + (size) * i;                                           \
                dout[i] = (double)(value);                                                         \
            }                                                                                      \
    } while (0)
    switch (h->elem) {
    case NNA_U8:
        NNA_RUN(1, q[0]);
        break;
    case NNA_I8:
        NNA_RUN(1, to_signed(q[0], 8));
        break;
    case NNA_I16:
        NNA_RUN(2, to_signed(get_uint(q, 2, big), 16));
        break;
    case NNA_I32:
        NNA_RUN(4, to_signed(get_uint(q, 4, big), 32));
        break;
    case NNA_I64:
        NNA_RUN(8, to_signed(get_uint(q, 8, big), 64));
        break;
    case NNA_F32:
        NNA_RUN(4, f32_bits(get_uint(q, 4, big)));
        break;
    case NNA_F64:
        NNA_RUN(8, f64_bits(get_uint(q, 8, big)));
        break;
    }
#undef NNA_RUN
}
