/*
 * data_npy.c — NumPy .npy files: read float32/float64/uint8/int64, write
 * float32.
 *
 * A .npy file is the magic "\x93NUMPY", a major and minor version byte, the
 * header length (little-endian u16 in version 1.0, u32 in 2.0 and 3.0), the
 * header — a Python dict literal such as
 *     {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }
 * padded with spaces and ended by '\n' — and then the raw elements in C order.
 *
 * The reader parses that dict by hand but strictly: exactly the three keys
 * (any order, any whitespace, a trailing comma allowed), quoted with ' or ",
 * nothing after the closing brace but padding.  It accepts the little-endian
 * dtypes '<f4', '<f8', '|u1' (also spelled '<u1') and '<i8', C order only,
 * and converts every element to float32; shape () (a scalar) becomes (1,).
 * The header is at most 1 MiB and every size is checked against the file's
 * size before anything is allocated: the data must fill the rest of the file
 * exactly.  Empty arrays are refused, as nncc_array never is empty.
 *
 * The writer emits version 1.0 '<f4', padding the header so the data starts
 * at a multiple of 64 bytes as NumPy does, and replaces the destination
 * atomically: it writes a temporary file in the same folder, flushes and
 * fsyncs it, then renames it over the target, so a reader never sees half a
 * file.  Bytes are assembled explicitly, so host endianness does not matter.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ir/error.h"

#define NPY_MAGIC "\x93NUMPY"
#define NPY_MAGIC_LEN 6
#define NPY_MAX_HEADER (1 << 20) /* real headers are ~100 bytes; this bounds the allocation */
#define NPY_ALIGN 64             /* NumPy aligns the data to 64 bytes */
#define NPY_CHUNK (64 * 1024)
#define NPY_STR_(x) #x
#define NPY_STR(x) NPY_STR_(x)

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

/* ---- The header dict ---------------------------------------------------- */

/* What the header says; `seen` marks the keys found. */
struct npy_header {
    char descr[32];
    bool fortran_order;
    struct nncc_shape shape;
    unsigned seen; /* bit 0 descr, 1 fortran_order, 2 shape */
};

struct cursor {
    const char *p, *end;
};

static void skip_space(struct cursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static bool take(struct cursor *c, char ch)
{
    skip_space(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return true;
    }
    return false;
}

/* A quoted Python string without escapes (none of the three keys or the
 * dtypes we accept needs one). */
static bool parse_string(struct cursor *c, char *out, size_t size)
{
    skip_space(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"')) return false;
    char quote = *c->p++;
    size_t n = 0;
    while (c->p < c->end && *c->p != quote) {
        if (*c->p == '\\' || *c->p == '\n' || n + 1 >= size) return false;
        out[n++] = *c->p++;
    }
    if (c->p >= c->end) return false;
    c->p++;
    out[n] = '\0';
    return true;
}

static bool parse_word(struct cursor *c, const char *word)
{
    skip_space(c);
    size_t n = strlen(word);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n) != 0) return false;
    c->p += n;
    return true;
}

/* A tuple of non-negative integers: (), (3,), (3, 4) or (3, 4,). */
static bool parse_shape(struct cursor *c, struct nncc_shape *shape, const char **why)
{
    *why = "the shape is not a tuple of integers";
    if (!take(c, '(')) return false;
    shape->rank = 0;
    if (take(c, ')')) return true;
    for (;;) {
        skip_space(c);
        if (c->p >= c->end || *c->p < '0' || *c->p > '9') return false;
        int64_t v = 0;
        while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
            if (v > (INT64_MAX - 9) / 10) {
                *why = "a dimension of the shape overflows";
                return false;
            }
            v = v * 10 + (*c->p++ - '0');
        }
        if (c->p < c->end && *c->p == 'L') c->p++; /* Python 2 long, as old NumPy wrote */
        if (shape->rank == NNCC_MAX_RANK) {
            *why = "the shape has more than " NPY_STR(NNCC_MAX_RANK) " dimensions";
            return false;
        }
        shape->dim[shape->rank++] = v;
        bool comma = take(c, ',');
        if (take(c, ')')) return shape->rank > 1 || comma; /* (3) is an int, not a tuple */
        if (!comma) return false;
    }
}

/* Parses the dict into h; on failure returns a static reason. */
static const char *parse_header(const char *text, size_t len, struct npy_header *h)
{
    struct cursor c = {text, text + len};
    memset(h, 0, sizeof *h);
    if (!take(&c, '{')) return "the header is not a dict";
    for (;;) {
        if (take(&c, '}')) break;
        char key[32];
        if (!parse_string(&c, key, sizeof key)) return "expected a quoted key in the header dict";
        if (!take(&c, ':')) return "expected ':' after a key in the header dict";
        unsigned bit;
        if (!strcmp(key, "descr")) {
            bit = 1;
            if (!parse_string(&c, h->descr, sizeof h->descr)) return "'descr' is not a dtype string";
        } else if (!strcmp(key, "fortran_order")) {
            bit = 2;
            if (parse_word(&c, "True")) h->fortran_order = true;
            else if (parse_word(&c, "False")) h->fortran_order = false;
            else return "'fortran_order' is neither True nor False";
        } else if (!strcmp(key, "shape")) {
            bit = 4;
            const char *why;
            if (!parse_shape(&c, &h->shape, &why)) return why;
        } else {
            return "unknown key in the header dict (expected 'descr', 'fortran_order', 'shape')";
        }
        if (h->seen & bit) return "a key appears twice in the header dict";
        h->seen |= bit;
        if (take(&c, '}')) break;
        if (!take(&c, ',')) return "expected ',' or '}' in the header dict";
    }
    skip_space(&c); /* the padding */
    if (c.p != c.end) return "unexpected text after the header dict";
    if (!(h->seen & 1)) return "the header has no 'descr'";
    if (!(h->seen & 2)) return "the header has no 'fortran_order'";
    if (!(h->seen & 4)) return "the header has no 'shape'";
    return NULL;
}

/* ---- Reading ------------------------------------------------------------ */

enum npy_dtype { NPY_F4, NPY_F8, NPY_U1, NPY_I8 };

static uint64_t le(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static void decode(const unsigned char *p, int64_t n, enum npy_dtype t, float *out)
{
    for (int64_t i = 0; i < n; i++) {
        switch (t) {
        case NPY_F4: {
            uint32_t u = (uint32_t)le(p + 4 * i, 4);
            memcpy(&out[i], &u, sizeof u);
            break;
        }
        case NPY_F8: {
            uint64_t u = le(p + 8 * i, 8);
            double v;
            memcpy(&v, &u, sizeof v);
            out[i] = (float)v;
            break;
        }
        case NPY_U1: out[i] = p[i]; break;
        case NPY_I8: {
            uint64_t u = le(p + 8 * i, 8);
            /* two's complement without implementation-defined conversion */
            out[i] = u >> 63 ? -(float)(~u + 1) : (float)u;
            break;
        }
        }
    }
}

/* Reads exactly n bytes; false on a short read. */
static bool read_all(FILE *fp, void *buf, size_t n) { return fread(buf, 1, n, fp) == n; }

struct nncc_array *nncc_load_npy(const char *path)
{
    if (!path) return NNCC_FAIL_NULL(NNCC_ERR_ARG, "nncc_load_npy: path is NULL");
    FILE *fp = fopen(path, "rb");
    if (!fp) return (npy_fail(path, NNCC_ERR_IO, "cannot open: %s", strerror(errno)), NULL);
    struct nncc_array *a = NULL;
    char *text = NULL;
    unsigned char *buf = NULL;
    struct stat st;
    if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode)) {
        npy_fail(path, NNCC_ERR_IO, "not a regular file");
        goto done;
    }
    int64_t size = st.st_size;

    unsigned char pre[12];
    if (size < 10 || !read_all(fp, pre, 10)) {
        npy_fail(path, NNCC_ERR_FORMAT, "too short for a .npy file (%lld bytes)", (long long)size);
        goto done;
    }
    if (memcmp(pre, NPY_MAGIC, NPY_MAGIC_LEN) != 0) {
        npy_fail(path, NNCC_ERR_FORMAT,
                 "bad magic %02x %02x %02x %02x %02x %02x (expected 93 'NUMPY')", pre[0], pre[1],
                 pre[2], pre[3], pre[4], pre[5]);
        goto done;
    }
    int major = pre[6], minor = pre[7];
    if (major < 1 || major > 3 || minor != 0) {
        npy_fail(path, NNCC_ERR_FORMAT, "unsupported version %d.%d (expected 1.0, 2.0 or 3.0)",
                 major, minor);
        goto done;
    }
    int64_t preamble = major == 1 ? 10 : 12;
    int64_t hlen;
    if (major == 1) {
        hlen = (int64_t)le(pre + 8, 2);
    } else {
        if (size < 12 || !read_all(fp, pre + 10, 2)) {
            npy_fail(path, NNCC_ERR_FORMAT, "too short for a version %d.0 .npy file (%lld bytes)",
                     major, (long long)size);
            goto done;
        }
        hlen = (int64_t)le(pre + 8, 4);
    }
    if (hlen > NPY_MAX_HEADER) {
        npy_fail(path, NNCC_ERR_FORMAT, "header length %lld is too large (at most %d)",
                 (long long)hlen, NPY_MAX_HEADER);
        goto done;
    }
    if (preamble + hlen > size) {
        npy_fail(path, NNCC_ERR_FORMAT,
                 "header length %lld runs past the end of the file (%lld bytes)", (long long)hlen,
                 (long long)size);
        goto done;
    }
    text = malloc((size_t)hlen + 1);
    if (!text) {
        npy_fail(path, NNCC_ERR_NOMEM, "out of memory");
        goto done;
    }
    if (!read_all(fp, text, (size_t)hlen)) {
        npy_fail(path, NNCC_ERR_IO, "cannot read the header: %s",
                 ferror(fp) ? strerror(errno) : "the file shrank while being read");
        goto done;
    }
    text[hlen] = '\0';
    if (memchr(text, '\0', (size_t)hlen)) {
        npy_fail(path, NNCC_ERR_FORMAT, "the header contains a NUL byte");
        goto done;
    }
    struct npy_header h;
    const char *why = parse_header(text, (size_t)hlen, &h);
    if (why) {
        npy_fail(path, NNCC_ERR_FORMAT, "malformed header: %s (header: %.200s)", why, text);
        goto done;
    }

    enum npy_dtype dtype;
    int elem;
    if (!strcmp(h.descr, "<f4")) dtype = NPY_F4, elem = 4;
    else if (!strcmp(h.descr, "<f8")) dtype = NPY_F8, elem = 8;
    else if (!strcmp(h.descr, "|u1") || !strcmp(h.descr, "<u1")) dtype = NPY_U1, elem = 1;
    else if (!strcmp(h.descr, "<i8")) dtype = NPY_I8, elem = 8;
    else {
        npy_fail(path, NNCC_ERR_FORMAT,
                 "dtype '%s' is not supported%s (supported: '<f4', '<f8', '|u1', '<i8')",
                 h.descr, h.descr[0] == '>' ? ": big-endian data" : "");
        goto done;
    }
    if (h.fortran_order) {
        npy_fail(path, NNCC_ERR_FORMAT, "Fortran order is not supported (save a C-order array)");
        goto done;
    }
    if (h.shape.rank == 0) h.shape = NNCC_SHAPE(1); /* a scalar */
    int64_t count = 1;
    for (int i = 0; i < h.shape.rank; i++) {
        if (h.shape.dim[i] == 0) {
            npy_fail(path, NNCC_ERR_FORMAT,
                     "dimension %d of the shape is 0: empty arrays are not supported", i);
            goto done;
        }
        if (count > INT64_MAX / 8 / h.shape.dim[i]) {
            npy_fail(path, NNCC_ERR_FORMAT, "the shape's element count overflows");
            goto done;
        }
        count *= h.shape.dim[i];
    }
    int64_t data_bytes = count * elem, actual = size - preamble - hlen;
    if (actual != data_bytes) {
        npy_fail(path, NNCC_ERR_FORMAT,
                 "%s: shape and dtype '%s' need %lld data bytes, the file has %lld",
                 actual < data_bytes ? "truncated data" : "trailing bytes", h.descr,
                 (long long)data_bytes, (long long)actual);
        goto done;
    }

    a = nncc_array_new(h.shape);
    buf = malloc(NPY_CHUNK);
    if (!a || !buf) {
        if (a) npy_fail(path, NNCC_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (int64_t done = 0; done < count;) {
        int64_t n = count - done < NPY_CHUNK / elem ? count - done : NPY_CHUNK / elem;
        if (!read_all(fp, buf, (size_t)(n * elem))) {
            npy_fail(path, NNCC_ERR_IO, "cannot read the data: %s",
                     ferror(fp) ? strerror(errno) : "the file shrank while being read");
            goto fail;
        }
        decode(buf, n, dtype, a->data + done);
        done += n;
    }
    goto done;
fail:
    nncc_array_free(a);
    a = NULL;
done:
    free(buf);
    free(text);
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

/* Creates a fresh temporary file next to path.  open() with O_EXCL and mode
 * 0666 (rather than mkstemp's 0600) lets the umask decide the permissions,
 * as for any file the user writes. */
static int create_temp(const char *path, char *tmp, size_t size)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t seed = (uint64_t)ts.tv_nsec ^ (uint64_t)ts.tv_sec << 20 ^ (uint64_t)getpid() << 40 ^
                    (uint64_t)(uintptr_t)tmp;
    for (int attempt = 0; attempt < 100; attempt++) {
        seed = seed * 6364136223846793005u + 1442695040888963407u;
        snprintf(tmp, size, "%s.tmp-%08x", path, (unsigned)(seed >> 32));
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd >= 0 || errno != EEXIST) return fd;
    }
    return -1;
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

    size_t cap = strlen(path) + 32;
    char *tmp = malloc(cap);
    unsigned char *buf = malloc(NPY_CHUNK);
    if (!tmp || !buf) {
        free(tmp);
        free(buf);
        return nncc_fail(NNCC_ERR_NOMEM, "nncc_save_npy: out of memory");
    }
    enum nncc_status s = NNCC_OK;
    int fd = create_temp(path, tmp, cap);
    if (fd < 0) {
        s = nncc_fail(NNCC_ERR_IO, "nncc_save_npy: cannot create a temporary file for '%s': %s",
                      path, strerror(errno));
        goto done;
    }
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
    /* fsync before rename: the new name must never point at unwritten data. */
    ok = ok && fsync(fd) == 0;
    int err = errno;
    if (close(fd) != 0 && ok) {
        ok = false;
        err = errno;
    }
    if (!ok) {
        unlink(tmp);
        s = nncc_fail(NNCC_ERR_IO, "nncc_save_npy: cannot write '%s': %s", tmp, strerror(err));
        goto done;
    }
    if (rename(tmp, path) != 0) {
        err = errno;
        unlink(tmp);
        s = nncc_fail(NNCC_ERR_IO, "nncc_save_npy: cannot rename '%s' to '%s': %s", tmp, path,
                      strerror(err));
    }
done:
    free(tmp);
    free(buf);
    return s;
}
