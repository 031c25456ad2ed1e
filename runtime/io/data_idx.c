/*
 * data_idx.c — the IDX reader (the MNIST / Fashion-MNIST file format).
 *
 * An IDX file is two zero bytes, a type byte (0x08 ubyte, 0x09 sbyte, 0x0B
 * short, 0x0C int, 0x0D float, 0x0E double), a byte counting the dimensions,
 * one big-endian u32 per dimension, then the elements, big-endian, row-major.
 * Files are read through zlib's gz* functions, which read gzip-compressed and
 * plain files alike, and every element is converted to float32.
 *
 * The header is hostile until checked: every dimension must be positive,
 * their product must not overflow, and the announced data must fit the file
 * before anything is allocated — exactly (no truncation, no trailing bytes)
 * for a plain file, and at most 1100 times the compressed size for a gzip
 * file (deflate cannot expand more than about 1032:1), whose truncation is
 * then caught while reading.  A file is always read to its end, even when
 * only a prefix is kept (`limit`), so a damaged file never loads silently
 * (zlib checks each gzip member's CRC; like gzip(1), it ignores non-gzip
 * bytes after the last member).
 *
 * nncc_load_idx_file() returns any IDX file unchanged in shape;
 * nncc_load_idx_() pairs an image file (n, rows, cols) with a label file (n)
 * into x (n, rows, cols, 1) and y (n) or (n, one_hot).  Errors name the file
 * and what is wrong; all state is on the stack or in the returned arrays.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "ir/error.h"

#define IDX_GZ_MAX_RATIO 1100     /* gzip expands at most ~1032:1; a bigger claim is a lie */
#define IDX_CHUNK (64 * 1024)     /* bytes decoded per gzread(); a multiple of every element size */

/* An open IDX file whose header has been read and checked. */
struct idx {
    const char *path;
    const char *what;        /* "IDX file", "IDX images file"…: how messages name it */
    gzFile gz;
    int type;                /* the type byte */
    int elem;                /* bytes per element */
    struct nncc_shape shape; /* as in the file */
    int64_t count;           /* elements (product of the dimensions) */
    int64_t header_bytes;
};

static enum nncc_status idx_fail(const struct idx *f, enum nncc_status status, const char *fmt,
                                 ...) NNCC_PRINTF(3, 4);

/* Every message starts with the role and the path of the file. */
static enum nncc_status idx_fail(const struct idx *f, enum nncc_status status, const char *fmt,
                                 ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return nncc_fail(status, "%s '%s': %s", f->what, f->path, msg);
}

static int type_size(int type)
{
    switch (type) {
    case 0x08: case 0x09: return 1;
    case 0x0B: return 2;
    case 0x0C: case 0x0D: return 4;
    case 0x0E: return 8;
    }
    return 0;
}

static const char *type_name(int type)
{
    switch (type) {
    case 0x08: return "ubyte";
    case 0x09: return "sbyte";
    case 0x0B: return "short";
    case 0x0C: return "int";
    case 0x0D: return "float";
    case 0x0E: return "double";
    }
    return "unknown";
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* A failed or short gzread(): zlib's "unexpected end of file" and a short
 * count both mean the data stops early; anything else is damage or I/O. */
static enum nncc_status read_error(const struct idx *f, int64_t expected, int64_t got)
{
    int errnum = Z_OK;
    const char *zmsg = gzerror(f->gz, &errnum);
    /* zlib prefixes its message with the name it knows, "<fd:N>: ". */
    if (!strncmp(zmsg, "<fd:", 4) && strstr(zmsg, ": ")) zmsg = strstr(zmsg, ": ") + 2;
    if (errnum == Z_ERRNO)
        return idx_fail(f, NNCC_ERR_IO, "read error: %s", strerror(errno));
    if (errnum != Z_OK && errnum != Z_BUF_ERROR)
        return idx_fail(f, NNCC_ERR_FORMAT, "corrupt gzip data (zlib: %s)", zmsg);
    if (got < expected)
        return idx_fail(f, NNCC_ERR_FORMAT,
                        "truncated: expected %lld data bytes after the %lld-byte header, got %lld",
                        (long long)expected, (long long)f->header_bytes, (long long)got);
    return idx_fail(f, NNCC_ERR_FORMAT, "truncated gzip stream after the %lld data bytes (zlib: %s)",
                    (long long)expected, zmsg);
}

/* zlib's pending error on the stream: Z_OK, or Z_BUF_ERROR when a gzip
 * stream ended early (its "unexpected end of file"), or real damage. */
static int zlib_error(const struct idx *f)
{
    int errnum = Z_OK;
    gzerror(f->gz, &errnum);
    return errnum;
}

/* After a short gzread(): the data simply ended (a plain end of file or a
 * gzip stream cut short) rather than being damaged or unreadable. */
static bool stopped_early(const struct idx *f)
{
    return zlib_error(f) == Z_OK || zlib_error(f) == Z_BUF_ERROR;
}

static void idx_close(struct idx *f)
{
    if (f->gz) gzclose_r(f->gz);
    f->gz = NULL;
}

/* Opens path and reads and checks the header, leaving the stream at the
 * first element.  On error the file is closed and the message set. */
static enum nncc_status idx_open(struct idx *f, const char *path, const char *what)
{
    memset(f, 0, sizeof *f);
    f->path = path;
    f->what = what;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return idx_fail(f, NNCC_ERR_IO, "cannot open: %s", strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return idx_fail(f, NNCC_ERR_IO, "not a regular file");
    }
    f->gz = gzdopen(fd, "rb"); /* takes fd: gzclose_r() closes it */
    if (!f->gz) {
        close(fd);
        return idx_fail(f, NNCC_ERR_NOMEM, "out of memory opening the file");
    }
    gzbuffer(f->gz, 128 * 1024);

    unsigned char head[4 + 4 * NNCC_MAX_RANK];
    enum nncc_status s = NNCC_OK;
    int got = gzread(f->gz, head, 4);
    if (got != 4) {
        s = got >= 0 && stopped_early(f)
                ? idx_fail(f, NNCC_ERR_FORMAT, "too short for an IDX header (%d bytes)", got)
                : read_error(f, 4, got < 0 ? 0 : got);
        goto fail;
    }
    bool compressed = !gzdirect(f->gz);
    if (head[0] != 0 || head[1] != 0) {
        s = idx_fail(f, NNCC_ERR_FORMAT,
                     "bad magic %02x %02x %02x %02x (an IDX file starts with 00 00, "
                     "a type byte and a dimension count)",
                     head[0], head[1], head[2], head[3]);
        goto fail;
    }
    f->type = head[2];
    f->elem = type_size(f->type);
    if (!f->elem) {
        s = idx_fail(f, NNCC_ERR_FORMAT,
                     "unknown type code 0x%02x (expected 0x08 ubyte, 0x09 sbyte, 0x0B short, "
                     "0x0C int, 0x0D float or 0x0E double)",
                     f->type);
        goto fail;
    }
    int ndims = head[3];
    if (ndims < 1 || ndims > NNCC_MAX_RANK) {
        s = idx_fail(f, NNCC_ERR_FORMAT, "wrong number of dimensions: %d (expected 1 to %d)",
                     ndims, NNCC_MAX_RANK);
        goto fail;
    }
    f->header_bytes = 4 + 4 * (int64_t)ndims;
    got = gzread(f->gz, head + 4, (unsigned)(4 * ndims));
    if (got != 4 * ndims) {
        s = got >= 0 && stopped_early(f)
                ? idx_fail(f, NNCC_ERR_FORMAT,
                           "truncated header: %d dimensions need %lld bytes, the file has %d",
                           ndims, (long long)f->header_bytes, 4 + got)
                : read_error(f, 4 * ndims, got < 0 ? 0 : got);
        goto fail;
    }

    /* Bound the size before anything is allocated: count * 8 must fit int64. */
    char dims[16 * NNCC_MAX_RANK] = "";
    size_t len = 0;
    for (int i = 0; i < ndims; i++)
        len += (size_t)snprintf(dims + len, sizeof dims - len, "%s%lu", i ? " x " : "",
                                (unsigned long)be32(head + 4 + 4 * i));
    f->shape.rank = ndims;
    f->count = 1;
    for (int i = 0; i < ndims; i++) {
        int64_t d = be32(head + 4 + 4 * i);
        if (d == 0) {
            s = idx_fail(f, NNCC_ERR_FORMAT, "dimension %d of %s is 0 (arrays must be non-empty)",
                         i, dims);
            goto fail;
        }
        if (f->count > INT64_MAX / 8 / d) {
            s = idx_fail(f, NNCC_ERR_FORMAT, "dimension overflow: %s elements are too many", dims);
            goto fail;
        }
        f->count *= d;
        f->shape.dim[i] = d;
    }
    int64_t data_bytes = f->count * f->elem;
    if (!compressed) {
        int64_t actual = (int64_t)st.st_size - f->header_bytes;
        if (actual < data_bytes) {
            s = idx_fail(f, NNCC_ERR_FORMAT,
                         "truncated: %s %s elements need %lld data bytes after the %lld-byte "
                         "header, the file has %lld",
                         dims, type_name(f->type), (long long)data_bytes,
                         (long long)f->header_bytes, (long long)actual);
            goto fail;
        }
        if (actual > data_bytes) {
            s = idx_fail(f, NNCC_ERR_FORMAT,
                         "trailing bytes: %s %s elements need %lld data bytes after the "
                         "%lld-byte header, the file has %lld",
                         dims, type_name(f->type), (long long)data_bytes,
                         (long long)f->header_bytes, (long long)actual);
            goto fail;
        }
    } else if ((int64_t)st.st_size <= INT64_MAX / IDX_GZ_MAX_RATIO &&
               data_bytes > (int64_t)st.st_size * IDX_GZ_MAX_RATIO) {
        s = idx_fail(f, NNCC_ERR_FORMAT,
                     "header claims %s %s elements (%lld bytes) but the gzip file has only %lld "
                     "bytes, and gzip cannot expand more than about 1032:1: corrupt header",
                     dims, type_name(f->type), (long long)data_bytes, (long long)st.st_size);
        goto fail;
    }
    return NNCC_OK;
fail:
    idx_close(f);
    return s;
}

/* Decodes n big-endian elements of type into out (float) or dout (double).
 * One loop per type: the switch stays out of the per-element path. */
static void decode(const unsigned char *p, int64_t n, int type, float *out, double *dout)
{
#define STORE(v) (out ? (void)(out[i] = (float)(v)) : (void)(dout[i] = (v)))
    switch (type) {
    case 0x08:
        for (int64_t i = 0; i < n; i++) STORE(p[i]);
        break;
    case 0x09:
        for (int64_t i = 0; i < n; i++) STORE(p[i] < 128 ? p[i] : (int)p[i] - 256);
        break;
    case 0x0B:
        for (int64_t i = 0; i < n; i++) {
            int u = p[2 * i] << 8 | p[2 * i + 1];
            STORE(u < 0x8000 ? u : u - 65536);
        }
        break;
    case 0x0C:
        for (int64_t i = 0; i < n; i++) {
            uint32_t u = be32(p + 4 * i);
            STORE(u < 0x80000000u ? (double)u : (double)u - 4294967296.0);
        }
        break;
    case 0x0D:
        for (int64_t i = 0; i < n; i++) {
            uint32_t u = be32(p + 4 * i);
            float v;
            memcpy(&v, &u, sizeof v);
            STORE(v);
        }
        break;
    case 0x0E:
        for (int64_t i = 0; i < n; i++) {
            uint64_t u = (uint64_t)be32(p + 8 * i) << 32 | be32(p + 8 * i + 4);
            double v;
            memcpy(&v, &u, sizeof v);
            STORE(v);
        }
        break;
    }
#undef STORE
}

/* Reads every element, keeping the first keep_rows rows (of dim[0]) in out
 * or dout, then checks that nothing follows them. */
static enum nncc_status idx_read(struct idx *f, int64_t keep_rows, float *out, double *dout)
{
    unsigned char *buf = malloc(IDX_CHUNK);
    if (!buf) return idx_fail(f, NNCC_ERR_NOMEM, "out of memory");
    int64_t keep = keep_rows * (f->count / f->shape.dim[0]);
    int64_t per_chunk = IDX_CHUNK / f->elem;
    int64_t total = f->count * f->elem;
    enum nncc_status s = NNCC_OK;
    for (int64_t done = 0; done < f->count;) {
        int64_t n = f->count - done < per_chunk ? f->count - done : per_chunk;
        int got = gzread(f->gz, buf, (unsigned)(n * f->elem));
        if (got != n * f->elem) {
            s = read_error(f, total, done * f->elem + (got > 0 ? got : 0));
            goto done;
        }
        if (done < keep)
            decode(buf, keep - done < n ? keep - done : n, f->type, out ? out + done : NULL,
                   dout ? dout + done : NULL);
        done += n;
    }
    /* Anything after the data is an error; count it to say how much. */
    int64_t extra = 0;
    for (;;) {
        int got = gzread(f->gz, buf, IDX_CHUNK);
        if (got < 0) {
            s = read_error(f, total, total);
            goto done;
        }
        if (got == 0) break;
        extra += got;
    }
    /* A gzip stream cut inside its trailer yields all the data, then a
     * clean-looking end of file with zlib's "unexpected end of file" set. */
    if (!extra && zlib_error(f) != Z_OK) {
        s = read_error(f, total, total);
        goto done;
    }
    if (extra)
        s = idx_fail(f, NNCC_ERR_FORMAT,
                     "trailing bytes: expected %lld data bytes after the %lld-byte header, "
                     "found %lld",
                     (long long)total, (long long)f->header_bytes, (long long)(total + extra));
done:
    free(buf);
    return s;
}

struct nncc_array *nncc_load_idx_file(const char *path)
{
    if (!path) return NNCC_FAIL_NULL(NNCC_ERR_ARG, "nncc_load_idx_file: path is NULL");
    struct idx f;
    if (idx_open(&f, path, "IDX file") != NNCC_OK) return NULL;
    struct nncc_array *a = nncc_array_new(f.shape);
    if (!a || idx_read(&f, f.shape.dim[0], a->data, NULL) != NNCC_OK) {
        nncc_array_free(a);
        a = NULL;
    }
    idx_close(&f);
    return a;
}

static bool is_integer_type(int type) { return type != 0x0D && type != 0x0E; }

struct nncc_data nncc_load_idx_(const char *images, const char *labels, struct nncc_idx_opts o)
{
    struct nncc_data d = {0};
    if (!images || !labels) {
        nncc_fail(NNCC_ERR_ARG, "nncc_load_idx: the %s path is NULL", images ? "labels" : "images");
        return d;
    }
    if (o.one_hot < 0 || o.limit < 0 || !isfinite(o.scale)) {
        nncc_fail(NNCC_ERR_ARG, "nncc_load_idx: %s",
                  o.one_hot < 0 ? "one_hot must be >= 0"
                  : o.limit < 0 ? "limit must be >= 0"
                                : "scale must be a finite number");
        return d;
    }
    float scale = o.scale == 0 ? 1.0f : o.scale;

    struct idx im, lb;
    if (idx_open(&im, images, "IDX images file") != NNCC_OK) return d;
    if (idx_open(&lb, labels, "IDX labels file") != NNCC_OK) {
        idx_close(&im);
        return d;
    }
    double *lab = NULL;
    /* Check both headers against each other before allocating anything. */
    if (im.shape.rank != 3) {
        idx_fail(&im, NNCC_ERR_FORMAT, "has %d dimensions; expected 3 (samples, rows, columns)",
                 im.shape.rank);
        goto fail;
    }
    if (lb.shape.rank != 1) {
        idx_fail(&lb, NNCC_ERR_FORMAT, "has %d dimensions; expected 1 (samples)", lb.shape.rank);
        goto fail;
    }
    if (!is_integer_type(lb.type)) {
        idx_fail(&lb, NNCC_ERR_FORMAT, "holds %s values; labels must be integers",
                 type_name(lb.type));
        goto fail;
    }
    int64_t n = im.shape.dim[0];
    if (lb.shape.dim[0] != n) {
        nncc_fail(NNCC_ERR_FORMAT, "images file '%s' has %lld samples but labels file '%s' has %lld",
                  images, (long long)n, labels, (long long)lb.shape.dim[0]);
        goto fail;
    }
    int64_t keep = o.limit > 0 && o.limit < n ? o.limit : n;

    d.x = nncc_array_new(NNCC_SHAPE(keep, im.shape.dim[1], im.shape.dim[2], 1));
    if (!d.x || idx_read(&im, keep, d.x->data, NULL) != NNCC_OK) goto fail;
    if (scale != 1.0f)
        for (int64_t i = 0, m = nncc_array_size(d.x); i < m; i++) d.x->data[i] *= scale;

    lab = malloc((size_t)keep * sizeof *lab); /* keep <= n, bounded by the file's size */
    if (!lab) {
        nncc_fail(NNCC_ERR_NOMEM, "nncc_load_idx: out of memory for %lld labels", (long long)keep);
        goto fail;
    }
    if (idx_read(&lb, keep, NULL, lab) != NNCC_OK) goto fail;
    if (o.one_hot > 0) {
        for (int64_t i = 0; i < keep; i++)
            if (lab[i] < 0 || lab[i] >= o.one_hot) {
                idx_fail(&lb, NNCC_ERR_FORMAT,
                         "row %lld has label %.0f, out of range for one_hot = %d (0 to %d)",
                         (long long)i, lab[i], o.one_hot, o.one_hot - 1);
                goto fail;
            }
        d.y = nncc_array_new(NNCC_SHAPE(keep, o.one_hot));
        if (!d.y) goto fail;
        for (int64_t i = 0; i < keep; i++) d.y->data[i * o.one_hot + (int64_t)lab[i]] = 1.0f;
    } else {
        d.y = nncc_array_new(NNCC_SHAPE(keep));
        if (!d.y) goto fail;
        for (int64_t i = 0; i < keep; i++) d.y->data[i] = (float)lab[i];
    }
    free(lab);
    idx_close(&im);
    idx_close(&lb);
    return d;
fail:
    free(lab);
    nncc_data_free(&d);
    idx_close(&im);
    idx_close(&lb);
    return d;
}
