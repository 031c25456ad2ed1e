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
 * The file is read in one go — one allocation bounded by its size — and
 * parsed twice: once to check it and count rows and columns, once to fill
 * the array, so no growable buffers are needed and memory stays at the file
 * plus the result.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ir/error.h"

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

struct csv {
    const char *path;
    const char *text;
    size_t len;
    char delim;
    bool header;
};

/* Walks the data lines.  With out == NULL, checks everything and counts
 * rows and columns; with out set (a second pass over text known good),
 * stores the values. */
static enum nncc_status csv_parse(const struct csv *c, float *out, int64_t *rows, int64_t *cols)
{
    const char *p = c->text, *end = c->text + c->len;
    int64_t line = 1, nrows = 0, ncols = out ? *cols : 0, first_line = 0;
    if (c->len >= 3 && !memcmp(p, "\xEF\xBB\xBF", 3)) p += 3; /* a UTF-8 BOM, as spreadsheets write */
    if (c->header) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        p = nl ? nl + 1 : end;
        line = 2;
    }
    for (; p < end; line++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end, *next = nl ? nl + 1 : end;
        if (le > p && le[-1] == '\r') le--;

        const char *q = p;
        while (q < le && is_blank(*q, c->delim)) q++;
        if (q == le) { /* a blank line: fine only if nothing but blanks follows */
            for (q = next; q < end; q++)
                if (!is_blank(*q, c->delim) && *q != '\r' && *q != '\n')
                    return csv_fail(c->path, NNCC_ERR_FORMAT, "line %lld is empty",
                                    (long long)line);
            break;
        }

        int64_t col = 0;
        for (const char *f = p;; col++) {
            const char *fe = memchr(f, c->delim, (size_t)(le - f));
            if (!fe) fe = le;
            const char *a = f, *b = fe; /* the field without surrounding blanks */
            while (a < b && is_blank(*a, c->delim)) a++;
            while (b > a && is_blank(b[-1], c->delim)) b--;
            if (out) {
                char buf[CSV_FIELD_MAX];
                memcpy(buf, a, (size_t)(b - a));
                buf[b - a] = '\0';
                out[nrows * ncols + col] = strtof(buf, NULL);
            } else {
                char q48[48];
                size_t n = (size_t)(b - a);
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
                    return csv_fail(c->path, NNCC_ERR_FORMAT,
                                    "line %lld, column %lld: '%s' is not a number",
                                    (long long)line, (long long)col + 1, quote_field(a, n, q48));
                if (!isfinite(v))
                    return csv_fail(c->path, NNCC_ERR_FORMAT,
                                    "line %lld, column %lld: '%s' is %s",
                                    (long long)line, (long long)col + 1, quote_field(a, n, q48),
                                    errno == ERANGE ? "out of float32 range"
                                                    : "not a finite number (nan and inf are refused)");
            }
            if (fe == le) break;
            f = fe + 1;
        }
        col++;
        if (!out && nrows == 0) {
            ncols = col;
            first_line = line;
        } else if (!out && col != ncols) {
            return csv_fail(c->path, NNCC_ERR_FORMAT,
                            "line %lld has %lld columns, expected %lld (as on line %lld)",
                            (long long)line, (long long)col, (long long)ncols,
                            (long long)first_line);
        }
        nrows++;
        p = next;
    }
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

    FILE *fp = fopen(path, "rb");
    if (!fp) return (csv_fail(path, NNCC_ERR_IO, "cannot open: %s", strerror(errno)), NULL);
    struct nncc_array *a = NULL;
    char *text = NULL;
    struct stat st;
    if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode)) {
        csv_fail(path, NNCC_ERR_IO, "not a regular file");
        goto done;
    }
    if (st.st_size == 0) {
        csv_fail(path, NNCC_ERR_FORMAT, "empty file");
        goto done;
    }
    if ((uint64_t)st.st_size >= SIZE_MAX || !(text = malloc((size_t)st.st_size))) {
        csv_fail(path, NNCC_ERR_NOMEM, "out of memory for %lld bytes", (long long)st.st_size);
        goto done;
    }
    size_t len = fread(text, 1, (size_t)st.st_size, fp);
    if (len != (size_t)st.st_size) {
        csv_fail(path, NNCC_ERR_IO, "cannot read: %s",
                 ferror(fp) ? strerror(errno) : "the file shrank while being read");
        goto done;
    }

    struct csv c = {path, text, len, delim, o.header};
    int64_t rows, cols;
    if (csv_parse(&c, NULL, &rows, &cols) != NNCC_OK) goto done;
    a = nncc_array_new(NNCC_SHAPE(rows, cols));
    if (a && csv_parse(&c, a->data, &rows, &cols) != NNCC_OK) {
        nncc_array_free(a);
        a = NULL;
    }
done:
    free(text);
    fclose(fp);
    return a;
}
