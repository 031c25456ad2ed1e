/*
 * data_idx.c — the IDX reader (the MNIST / Fashion-MNIST file format).
 *
 * The format itself — the header, its checks and the conversion of the
 * big-endian elements to float32 — is codegen/aot/formats.c, the parser
 * deployment programs embed too, so the two cannot disagree on a file.
 * This file streams files through zlib's gz* functions, which read
 * gzip-compressed and plain files alike, a chunk at a time, and owns what
 * streaming needs: the header is hostile until checked, so the announced
 * data must fit the file before anything is allocated — exactly (no
 * truncation, no trailing bytes) for a plain file, and at most 1100 times
 * the compressed size for a gzip file (deflate cannot expand more than
 * about 1032:1), whose length is then checked while reading, with the same
 * messages.  A file is always read to its end, even when only a prefix is
 * kept (`limit`), so a damaged file never loads silently (zlib checks each
 * gzip member's CRC; like gzip(1), it ignores non-gzip bytes after the last
 * member).  Only a regular file is opened, and a FIFO is refused without
 * blocking (open_regular.h).
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

#include "codegen/aot/formats.h"
#include "ir/error.h"
#include "runtime/io/open_regular.h"

#define IDX_GZ_MAX_RATIO 1100     /* gzip expands at most ~1032:1; a bigger claim is a lie */
#define IDX_CHUNK (64 * 1024)     /* bytes decoded per gzread(); a multiple of every element size */

_Static_assert(NNA_MAX_RANK == NNCC_MAX_RANK, "the format parser and nncc_shape differ in rank");

/* An open IDX file whose header has been read and checked. */
struct idx {
    const char *path;
    const char *what;        /* "IDX file", "IDX images file"…: how messages name it */
    gzFile gz;
    struct nna_header h;     /* as in the file */
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

/* A failed or short gzread() of the data, after `avail` data bytes: a read
 * error, damage, a gzip stream cut short, or data that ends cleanly too
 * soon (then the parser's own "truncated data" message, as for a plain file). */
static enum nncc_status read_error(const struct idx *f, uint64_t avail)
{
    int errnum = Z_OK;
    const char *zmsg = gzerror(f->gz, &errnum);
    /* zlib prefixes its message with the name it knows, "<fd:N>: ". */
    if (!strncmp(zmsg, "<fd:", 4) && strstr(zmsg, ": ")) zmsg = strstr(zmsg, ": ") + 2;
    if (errnum == Z_ERRNO)
        return idx_fail(f, NNCC_ERR_IO, "read error: %s", strerror(errno));
    if (errnum == Z_BUF_ERROR)
        return idx_fail(f, NNCC_ERR_FORMAT,
                        "truncated gzip stream (zlib: %s) after %llu data bytes; the header "
                        "announces %llu",
                        zmsg, (unsigned long long)avail, (unsigned long long)f->h.data_bytes);
    if (errnum != Z_OK)
        return idx_fail(f, NNCC_ERR_FORMAT, "corrupt gzip data (zlib: %s)", zmsg);
    char why[1024] = "the data stops early"; /* avail == data_bytes: not a size problem */
    nna_check_data(&f->h, avail, why, sizeof why);
    return idx_fail(f, NNCC_ERR_FORMAT, "%s", why);
}

static void idx_close(struct idx *f)
{
    if (f->gz) gzclose_r(f->gz);
    f->gz = NULL;
}

/* Reads up to n header bytes into p: their count, or -1 after setting the
 * error for a read error or damage (a short header is the parser's to name). */
static int read_head(struct idx *f, unsigned char *p, int n)
{
    int got = gzread(f->gz, p, (unsigned)n);
    if (got == n || (got >= 0 && stopped_early(f))) return got;
    read_error(f, 0);
    return -1;
}

/* Opens path and reads and checks the header, leaving the stream at the
 * first element.  On error the file is closed and the message set. */
static enum nncc_status idx_open(struct idx *f, const char *path, const char *what)
{
    memset(f, 0, sizeof *f);
    f->path = path;
    f->what = what;
    struct stat st;
    const char *why_not;
    int fd = io_open_regular(path, &st, &why_not); /* a FIFO is refused, not waited for */
    if (fd < 0)
        return why_not ? idx_fail(f, NNCC_ERR_IO, "%s", why_not)
                       : idx_fail(f, NNCC_ERR_IO, "cannot open: %s", strerror(errno));
    f->gz = gzdopen(fd, "rb"); /* takes fd: gzclose_r() closes it */
    if (!f->gz) {
        close(fd);
        return idx_fail(f, NNCC_ERR_NOMEM, "out of memory opening the file");
    }
    gzbuffer(f->gz, 128 * 1024);

    /* The 4-byte prefix says how long the header is; the parser checks both. */
    unsigned char head[4 + 4 * NNA_MAX_RANK];
    char why[1024];
    int got = read_head(f, head, 4), more;
    if (got < 0) goto fail_set;
    if (nna_idx_prefix(head, (size_t)got, &f->h, why, sizeof why)) goto fail;
    bool compressed = !gzdirect(f->gz);
    if ((more = read_head(f, head + 4, (int)f->h.header_bytes - 4)) < 0) goto fail_set;
    if (nna_idx_header(head, 4 + (size_t)more, &f->h, why, sizeof why)) goto fail;

    /* The data's size, before anything is allocated. */
    if (!compressed) {
        if (nna_check_data(&f->h, (uint64_t)st.st_size - f->h.header_bytes, why, sizeof why))
            goto fail;
    } else if ((int64_t)st.st_size <= INT64_MAX / IDX_GZ_MAX_RATIO &&
               f->h.data_bytes > (uint64_t)st.st_size * IDX_GZ_MAX_RATIO) {
        snprintf(why, sizeof why,
                 "header claims %llu %s elements (%llu bytes) but the gzip file has only %lld "
                 "bytes, and gzip cannot expand more than about 1032:1: corrupt header",
                 (unsigned long long)f->h.count, f->h.type, (unsigned long long)f->h.data_bytes,
                 (long long)st.st_size);
        goto fail;
    }
    return NNCC_OK;
fail:
    idx_fail(f, NNCC_ERR_FORMAT, "%s", why);
fail_set: /* the error is set */
    idx_close(f);
    return nncc_last_status();
}

/* Reads every element, keeping the first keep_rows rows (of dims[0]) in out
 * or dout, then checks that nothing follows them. */
static enum nncc_status idx_read(struct idx *f, int64_t keep_rows, float *out, double *dout)
{
    unsigned char *buf = malloc(IDX_CHUNK);
    if (!buf) return idx_fail(f, NNCC_ERR_NOMEM, "out of memory");
    const int elem = f->h.elem_size;
    const int64_t count = (int64_t)f->h.count, total = (int64_t)f->h.data_bytes;
    int64_t keep = keep_rows * (count / (int64_t)f->h.dims[0]);
    int64_t per_chunk = IDX_CHUNK / elem;
    enum nncc_status s = NNCC_OK;
    for (int64_t done = 0; done < count;) {
        int64_t n = count - done < per_chunk ? count - done : per_chunk;
        int got = gzread(f->gz, buf, (unsigned)(n * elem));
        if (got != n * elem) {
            s = read_error(f, (uint64_t)(done * elem + (got > 0 ? got : 0)));
            goto done;
        }
        if (done < keep)
            nna_decode_elems(&f->h, buf, (size_t)(keep - done < n ? keep - done : n),
                             out ? out + done : NULL, dout ? dout + done : NULL);
        done += n;
    }
    /* Anything after the data is an error; count it to say how much. */
    int64_t extra = 0;
    for (;;) {
        int got = gzread(f->gz, buf, IDX_CHUNK);
        if (got < 0) {
            s = read_error(f, (uint64_t)total);
            goto done;
        }
        if (got == 0) break;
        extra += got;
    }
    /* A gzip stream cut inside its trailer yields all the data, then a
     * clean-looking end of file with zlib's "unexpected end of file" set. */
    if (extra || zlib_error(f) != Z_OK) s = read_error(f, (uint64_t)(total + extra));
done:
    free(buf);
    return s;
}

/* The shape the header announces. */
static struct nncc_shape idx_shape(const struct idx *f)
{
    struct nncc_shape shape = {.rank = f->h.rank};
    for (int i = 0; i < f->h.rank; i++) shape.dim[i] = (int64_t)f->h.dims[i];
    return shape;
}

struct nncc_array *nncc_load_idx_file(const char *path)
{
    if (!path) return NNCC_FAIL_NULL(NNCC_ERR_ARG, "nncc_load_idx_file: path is NULL");
    struct idx f;
    if (idx_open(&f, path, "IDX file") != NNCC_OK) return NULL;
    struct nncc_array *a = nncc_array_new(idx_shape(&f));
    if (!a || idx_read(&f, (int64_t)f.h.dims[0], a->data, NULL) != NNCC_OK) {
        nncc_array_free(a);
        a = NULL;
    }
    idx_close(&f);
    return a;
}

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
    if (im.h.rank != 3) {
        idx_fail(&im, NNCC_ERR_FORMAT, "has %d dimensions; expected 3 (samples, rows, columns)",
                 im.h.rank);
        goto fail;
    }
    if (lb.h.rank != 1) {
        idx_fail(&lb, NNCC_ERR_FORMAT, "has %d dimensions; expected 1 (samples)", lb.h.rank);
        goto fail;
    }
    if (lb.h.elem == NNA_F32 || lb.h.elem == NNA_F64) {
        idx_fail(&lb, NNCC_ERR_FORMAT, "holds %s values; labels must be integers", lb.h.type);
        goto fail;
    }
    int64_t n = (int64_t)im.h.dims[0];
    if ((int64_t)lb.h.dims[0] != n) {
        nncc_fail(NNCC_ERR_FORMAT, "images file '%s' has %lld samples but labels file '%s' has %lld",
                  images, (long long)n, labels, (long long)lb.h.dims[0]);
        goto fail;
    }
    int64_t keep = o.limit > 0 && o.limit < n ? o.limit : n;

    d.x = nncc_array_new(NNCC_SHAPE(keep, (int64_t)im.h.dims[1], (int64_t)im.h.dims[2], 1));
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
