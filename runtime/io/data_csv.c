/*
 * data_csv.c — a CSV file of numbers into a (rows, columns) float32 array.
 *
 * One row per line, fields separated by the delimiter (',' unless set),
 * spaces and tabs around a field ignored, "\r\n" line ends accepted, the
 * first line skipped when it is a header.  Every data line must have the
 * same number of columns; blank lines may only end the file.  A field must
 * be a number as strtof() reads it in the C locale, consumed completely;
 * "nan" and "inf" are refused, because a non-finite value in training data
 * poisons every weight it reaches and is better reported at load time with
 * its line and column.  Quoted fields are not supported (they are not
 * numbers); a leading UTF-8 byte order mark is skipped.  Errors name the file, the line (counted from 1, header
 * included) and the column.
 *
 * The file is parsed as it is read, a chunk at a time, in one pass: the
 * first bad field is reported as soon as its bytes arrive (a bad first line
 * is refused without reading the rest), no field is kept longer than
 * CSV_FIELD_MAX, and memory is the values kept plus a constant.  Only a
 * regular file is opened (open_regular.h: a FIFO is refused without
 * blocking).
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ir/error.h"
#include "runtime/io/open_regular.h"

#define CSV_FIELD_MAX 256 /* longer fields are not numbers anyone writes */

static enum nncc_status csv_fail(const char *path, enum nncc_status status, const char *fmt, ...)
    NNCC_PRINTF(3, 4);

/* Every message starts with the path of the file. */
static enum nncc_status csv_fail(const char *path, enum nncc_status status, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return nncc_fail(status, "CSV file '%s': %s", path, msg);
}

/* Copies a field for a message: at most 40 characters, unprintables as '?'. */
static const char *quote_field(const char *p, size_t n, char out[48])
{
    size_t k = n < 40 ? n : 40;
    for (size_t i = 0; i < k; i++) out[i] = p[i] >= 0x20 && p[i] < 0x7f ? p[i] : '?';
    strcpy(out + k, n > 40 ? "..." : "");
    return out;
}

static bool is_blank(char c, char delim) { return (c == ' ' || c == '\t') && c != delim; }

/* The file, a chunk at a time. */
struct csv_in {
    FILE *fp;
    unsigned char buf[64 * 1024];
    size_t n, i;
};

/* The next byte, or EOF at the end of the file or on a read error. */
static int csv_getc(struct csv_in *in)
{
    if (in->i == in->n) {
        in->n = fread(in->buf, 1, sizeof in->buf, in->fp);
        in->i = 0;
        if (in->n == 0) return EOF;
    }
    return in->buf[in->i++];
}

struct csv {
    const char *path;
    char delim;
    bool header;
    struct csv_in in;
    float *v; /* the values so far, row-major */
    size_t nv, cap;
};

static enum nncc_status csv_push(struct csv *c, float x)
{
    if (c->nv == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 4096;
        float *v = cap <= SIZE_MAX / sizeof *v ? realloc(c->v, cap * sizeof *v) : NULL;
        if (!v)
            return csv_fail(c->path, NNCC_ERR_NOMEM, "out of memory for %zu values", c->nv + 1);
        c->v = v;
        c->cap = cap;
    }
    c->v[c->nv++] = x;
    return NNCC_OK;
}

/* Checks field n (chars at a, blanks trimmed) of a line and keeps its value. */
static enum nncc_status csv_field(struct csv *c, const char *a, size_t n, int64_t line,
                                  int64_t col)
{
    char q48[48];
    if (n == 0)
        return csv_fail(c->path, NNCC_ERR_FORMAT, "line %lld, column %lld: empty field",
                        (long long)line, (long long)col + 1);
    char buf[CSV_FIELD_MAX];
    char *stop = buf;
    float v = 0;
    if (n < sizeof buf) {
        memcpy(buf, a, n);
        buf[n] = '\0';
        errno = 0;
        v = strtof(buf, &stop);
    }
    if (n >= sizeof buf || stop != buf + n) /* length first: buf + n may not exist */
        return csv_fail(c->path, NNCC_ERR_FORMAT, "line %lld, column %lld: '%s' is not a number",
                        (long long)line, (long long)col + 1, quote_field(a, n, q48));
    if (!isfinite(v))
        return csv_fail(c->path, NNCC_ERR_FORMAT, "line %lld, column %lld: '%s' is %s",
                        (long long)line, (long long)col + 1, quote_field(a, n, q48),
                        errno == ERANGE ? "out of float32 range"
                                        : "not a finite number (nan and inf are refused)");
    return csv_push(c, v);
}

/* Reads the data lines: every field checked and kept as it arrives.  A
 * field's leading blanks are dropped and at most CAP characters stored, so
 * a field longer than CSV_FIELD_MAX is refused as soon as a non-blank
 * comes after them, while "1" followed by any number of blanks is "1". */
static enum nncc_status csv_parse(struct csv *c, int64_t *rows, int64_t *cols)
{
    enum { CAP = CSV_FIELD_MAX + 4 };
    char f[CAP];
    int64_t line = 1, nrows = 0, ncols = 0, first_line = 0, blank_line = 0;
    int ch = csv_getc(&c->in); /* the first chunk: a file's first bytes are all there */
    if (ch == 0xEF && c->in.n >= 3 && !memcmp(c->in.buf, "\xEF\xBB\xBF", 3)) {
        c->in.i = 3; /* a UTF-8 BOM, as spreadsheets write */
        ch = csv_getc(&c->in);
    }
    if (c->header) {
        while (ch != EOF && ch != '\n') ch = csv_getc(&c->in);
        if (ch == '\n') ch = csv_getc(&c->in);
        line = 2;
    }
    for (; ch != EOF; line++) {
        if (blank_line) { /* after a blank line only blanks may follow */
            for (; ch != EOF; ch = csv_getc(&c->in))
                if (!is_blank((char)ch, c->delim) && ch != '\r' && ch != '\n')
                    return csv_fail(c->path, NNCC_ERR_FORMAT, "line %lld is empty",
                                    (long long)blank_line);
            break;
        }
        int64_t col = 0;
        size_t n = 0, last = 0; /* chars stored; up to the last non-blank */
        bool any = false;       /* a non-blank or a delimiter on this line */
        bool lost_cr = false;   /* a '\r' past CAP: fine only as the line's last char */
        for (;; ch = csv_getc(&c->in)) {
            bool end = ch == EOF || ch == '\n';
            if (lost_cr && !end) return csv_field(c, f, n, line, col);
            if (end || ch == c->delim) {
                if (end && last > 0 && last == n && f[last - 1] == '\r') last--; /* "\r\n" */
                while (last > 0 && is_blank(f[last - 1], c->delim)) last--;
                if (end && !any && last == 0) break; /* a blank line */
                enum nncc_status s = csv_field(c, f, last, line, col);
                if (s != NNCC_OK) return s;
                col++;
                n = last = 0;
                if (end) break;
                any = true;
                continue;
            }
            if (is_blank((char)ch, c->delim)) {
                if (n > 0 && n < CAP) f[n++] = (char)ch; /* leading blanks are dropped */
                continue;
            }
            if (ch != '\r') any = true;
            if (ch == '\r' && n == CAP) {
                lost_cr = true;
                continue;
            }
            if (n == CAP || n >= CSV_FIELD_MAX + 2) /* too long even without a final '\r' */
                return csv_field(c, f, n, line, col);
            f[n++] = (char)ch;
            last = n;
        }
        if (col == 0) { /* a blank line: fine only if nothing but blanks follows */
            blank_line = line;
            if (ch != EOF) ch = csv_getc(&c->in);
            continue;
        }
        if (nrows == 0) {
            ncols = col;
            first_line = line;
        } else if (col != ncols) {
            return csv_fail(c->path, NNCC_ERR_FORMAT,
                            "line %lld has %lld columns, expected %lld (as on line %lld)",
                            (long long)line, (long long)col, (long long)ncols,
                            (long long)first_line);
        }
        nrows++;
        if (ch != EOF) ch = csv_getc(&c->in);
    }
    if (ferror(c->in.fp))
        return csv_fail(c->path, NNCC_ERR_IO, "cannot read: %s", strerror(errno));
    if (nrows == 0)
        return csv_fail(c->path, NNCC_ERR_FORMAT, "%s", c->header ? "no data rows after the header"
                                                                  : "no data rows");
    *rows = nrows;
    *cols = ncols;
    return NNCC_OK;
}

struct nncc_array *nncc_load_csv_(const char *path, struct nncc_csv_opts o)
{
    if (!path) return NNCC_FAIL_NULL(NNCC_ERR_ARG, "nncc_load_csv: path is NULL");
    char delim = o.delimiter ? o.delimiter : ',';
    if (delim == '\n' || delim == '\r' || (delim >= '0' && delim <= '9') || delim == '.' ||
        delim == '+' || delim == '-' || delim == 'e' || delim == 'E')
        return NNCC_FAIL_NULL(NNCC_ERR_ARG,
                              "nncc_load_csv: '%s': delimiter 0x%02x cannot separate numbers",
                              path, (unsigned char)delim);

    struct stat st;
    const char *why;
    int fd = io_open_regular(path, &st, &why);
    if (fd < 0)
        return why ? (csv_fail(path, NNCC_ERR_IO, "%s", why), NULL)
                   : (csv_fail(path, NNCC_ERR_IO, "cannot open: %s", strerror(errno)), NULL);
    if (st.st_size == 0) {
        close(fd);
        return (csv_fail(path, NNCC_ERR_FORMAT, "empty file"), NULL);
    }
    struct csv *c = calloc(1, sizeof *c);
    FILE *fp = c ? fdopen(fd, "rb") : NULL;
    if (!fp) {
        free(c);
        close(fd);
        return NNCC_FAIL_NULL(NNCC_ERR_NOMEM, "CSV file '%s': out of memory", path);
    }
    c->path = path;
    c->delim = delim;
    c->header = o.header;
    c->in.fp = fp;
    struct nncc_array *a = NULL;
    int64_t rows = 0, cols = 0;
    if (csv_parse(c, &rows, &cols) == NNCC_OK) {
        /* The array takes the values as they are (nncc_array_free frees both). */
        a = calloc(1, sizeof *a);
        if (!a) {
            csv_fail(path, NNCC_ERR_NOMEM, "out of memory");
        } else {
            a->shape = NNCC_SHAPE(rows, cols);
            float *v = realloc(c->v, c->nv * sizeof *v);
            a->data = v ? v : c->v;
            c->v = NULL;
        }
    }
    free(c->v);
    fclose(fp);
    free(c);
    return a;
}
