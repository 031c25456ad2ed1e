/*
 * data_npy.c — NumPy .npy files: read float32/float64/uint8/int64, write
 * float32.
 *
 * The reader opens the file and streams it; the format itself — the
 * header, its checks and the conversion of the elements to float32 — is
 * codegen/aot/formats.c, the parser deployment programs embed too, so the
 * two cannot disagree on a file.  It accepts the little-endian dtypes
 * '<f4', '<f8', '|u1' (also spelled '<u1') and '<i8', C order only; shape
 * () (a scalar) becomes (1,).  The header is at most 1 MiB and every size
 * is checked against the file's size before anything is allocated: the data
 * must fill the rest of the file exactly.  Empty arrays are refused, as
 * nncc_array never is empty.  Only a regular file is opened, and a FIFO is
 * refused without blocking (open_regular.h).  Messages are the parser's, after the path.
 *
 * The writer emits version 1.0 '<f4', padding the header so the data starts
 * at a multiple of 64 bytes as NumPy does, and replaces the destination
 * atomically (runtime/io/atomic.c: a temporary file beside the target,
 * fsynced, then renamed over it), so a reader never sees half a file.  Bytes are assembled explicitly, so host endianness does not matter.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codegen/aot/formats.h"
#include "ir/error.h"
#include "runtime/io/atomic.h"
#include "runtime/io/open_regular.h"

_Static_assert(NNA_MAX_RANK == NNCC_MAX_RANK, "the format parser and nncc_shape differ in rank");

#define NPY_ALIGN 64 /* NumPy aligns the data to 64 bytes */
#define NPY_CHUNK (64 * 1024)

static enum nncc_status npy_fail(const char *path, enum nncc_status status, const char *fmt, ...)
    NNCC_PRINTF(3, 4);

/* Every message starts with the path of the file. */
static enum nncc_status npy_fail(const char *path, enum nncc_status status, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return nncc_fail(status, ".npy file '%s': %s", path, msg);
}

/* ---- Reading ------------------------------------------------------------ */

/* Reads exactly n bytes; false on a short read. */
static bool read_all(FILE *fp, void *buf, size_t n) { return fread(buf, 1, n, fp) == n; }

/* Why a read_all() came up short. */
static const char *read_why(FILE *fp)
{
    return ferror(fp) ? strerror(errno) : "the file shrank while being read";
}

struct nncc_array *nncc_load_npy(const char *path)
{
    if (!path) return NNCC_FAIL_NULL(NNCC_ERR_ARG, "nncc_load_npy: path is NULL");
    struct stat st;
    const char *why_not;
    int fd = io_open_regular(path, &st, &why_not); /* a FIFO is refused, not waited for */
    if (fd < 0)
        return why_not ? (npy_fail(path, NNCC_ERR_IO, "%s", why_not), NULL)
                       : (npy_fail(path, NNCC_ERR_IO, "cannot open: %s", strerror(errno)), NULL);
    FILE *fp = fdopen(fd, "rb");
    if (!fp) {
        close(fd);
        return (npy_fail(path, NNCC_ERR_NOMEM, "out of memory opening the file"), NULL);
    }
    struct nncc_array *a = NULL;
    unsigned char *head = NULL, *buf = NULL;
    char why[1024];
    uint64_t size = (uint64_t)st.st_size;

    /* The prefix says how long the header is; then the whole header. */
    unsigned char pre[NNA_NPY_PREFIX];
    size_t n = size < sizeof pre ? (size_t)size : sizeof pre;
    struct nna_header h;
    if (!read_all(fp, pre, n)) {
        npy_fail(path, NNCC_ERR_IO, "cannot read the header: %s", read_why(fp));
        goto done;
    }
    if (nna_npy_prefix(pre, n, size, &h, why, sizeof why)) {
        npy_fail(path, NNCC_ERR_FORMAT, "%s", why);
        goto done;
    }
    head = malloc((size_t)h.header_bytes); /* at most NNA_NPY_PREFIX + NNA_NPY_MAX_HEADER */
    if (!head) {
        npy_fail(path, NNCC_ERR_NOMEM, "out of memory");
        goto done;
    }
    if (fseek(fp, 0, SEEK_SET) != 0 || !read_all(fp, head, (size_t)h.header_bytes)) {
        npy_fail(path, NNCC_ERR_IO, "cannot read the header: %s", read_why(fp));
        goto done;
    }
    if (nna_npy_header(head, (size_t)h.header_bytes, &h, why, sizeof why) ||
        nna_check_data(&h, size - h.header_bytes, why, sizeof why)) {
        npy_fail(path, NNCC_ERR_FORMAT, "%s", why);
        goto done;
    }

    struct nncc_shape shape = {.rank = h.rank};
    for (int i = 0; i < h.rank; i++) shape.dim[i] = (int64_t)h.dims[i];
    a = nncc_array_new(shape);
    buf = malloc(NPY_CHUNK);
    if (!a || !buf) {
        if (a) npy_fail(path, NNCC_ERR_NOMEM, "out of memory");
        goto fail;
    }
    int64_t per_chunk = NPY_CHUNK / h.elem_size, count = (int64_t)h.count;
    for (int64_t done = 0; done < count;) {
        int64_t k = count - done < per_chunk ? count - done : per_chunk;
        if (!read_all(fp, buf, (size_t)(k * h.elem_size))) {
            npy_fail(path, NNCC_ERR_IO, "cannot read the data: %s", read_why(fp));
            goto fail;
        }
        nna_decode_elems(&h, buf, (size_t)k, a->data + done, NULL);
        done += k;
    }
    goto done;
fail:
    nncc_array_free(a);
    a = NULL;
done:
    free(buf);
    free(head);
    fclose(fp);
    return a;
}

/* ---- Writing ------------------------------------------------------------ */

/* Writes all of buf to fd, retrying short writes; false with errno set. */
static bool write_full(int fd, const void *buf, size_t n)
{
    const unsigned char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        p += w;
        n -= (size_t)w;
    }
    return true;
}

enum nncc_status nncc_save_npy(const char *path, const struct nncc_array *a)
{
    if (!path) return nncc_fail(NNCC_ERR_ARG, "nncc_save_npy: path is NULL");
    if (!a || !a->data)
        return nncc_fail(NNCC_ERR_ARG, "nncc_save_npy: '%s': the array is NULL", path);
    if (a->shape.rank < 1 || a->shape.rank > NNCC_MAX_RANK)
        return nncc_fail(NNCC_ERR_ARG, "nncc_save_npy: '%s': rank %d is out of range (1 to %d)",
                         path, a->shape.rank, NNCC_MAX_RANK);
    for (int i = 0; i < a->shape.rank; i++)
        if (a->shape.dim[i] <= 0)
            return nncc_fail(NNCC_ERR_ARG,
                             "nncc_save_npy: '%s': dimension %d is %lld; the array is empty", path,
                             i, (long long)a->shape.dim[i]);

    /* The header as NumPy writes it, e.g. {'descr': '<f4', 'fortran_order':
     * False, 'shape': (3,), }, then spaces and '\n' up to the alignment. */
    char header[512];
    int n = snprintf(header, sizeof header, "{'descr': '<f4', 'fortran_order': False, 'shape': (");
    for (int i = 0; i < a->shape.rank; i++)
        n += snprintf(header + n, sizeof header - (size_t)n, "%s%lld", i ? ", " : "",
                      (long long)a->shape.dim[i]);
    n += snprintf(header + n, sizeof header - (size_t)n, "%s), }", a->shape.rank == 1 ? "," : "");
    int total = 10 + n + 1; /* preamble, dict, '\n' */
    int pad = (NPY_ALIGN - total % NPY_ALIGN) % NPY_ALIGN;
    memset(header + n, ' ', (size_t)pad);
    n += pad;
    header[n++] = '\n';
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(n & 0xff),
                             (unsigned char)(n >> 8)};

    unsigned char *buf = malloc(NPY_CHUNK);
    if (!buf)
        return nncc_fail(NNCC_ERR_NOMEM, "nncc_save_npy: out of memory");
    struct atomic_file af;
    enum nncc_status s = atomic_open(&af, path, "nncc_save_npy");
    if (s)
        goto done;
    int fd = af.fd;
    bool ok = write_full(fd, pre, sizeof pre) && write_full(fd, header, (size_t)n);
    int64_t count = nncc_array_size(a);
    for (int64_t done = 0; ok && done < count;) {
        int64_t k = count - done < NPY_CHUNK / 4 ? count - done : NPY_CHUNK / 4;
        for (int64_t i = 0; i < k; i++) {
            uint32_t u;
            memcpy(&u, &a->data[done + i], sizeof u);
            for (int b = 0; b < 4; b++) buf[4 * i + b] = (unsigned char)(u >> (8 * b));
        }
        ok = write_full(fd, buf, (size_t)(4 * k));
        done += k;
    }
    if (!ok) {
        int err = errno;
        atomic_abort(&af, NULL);
        s = nncc_fail(NNCC_ERR_IO, "nncc_save_npy: cannot write '%s': %s", path, strerror(err));
        goto done;
    }
    s = atomic_commit(&af, NULL, "nncc_save_npy", path);
done:
    free(buf);
    return s;
}
