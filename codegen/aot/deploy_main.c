/*
 * deploy_main.c - main() of a standalone deployment program
 * (`nncc compile --emit exe`): reads samples, runs the model the generated
 * glue describes (nna_model, deploy.h) in batches, and prints the predicted
 * class of each row or writes every output to a .npy file.
 *
 *   PROG [--input FILE] [--output FILE.npy] [--labels FILE] [--format F]
 *        [--scale S] [--bench] [--help]
 *
 * Input: .npy, IDX or (with --format raw, or a .raw/.f32 name) raw
 * little-endian float32, each possibly gzip-compressed; standard input when
 * there is no --input.  8-bit unsigned data (IDX ubyte images, uint8 .npy)
 * is scaled by 1/255 unless --scale says otherwise.  --labels FILE (class
 * indices or one-hot rows, any readable format) adds the accuracy on stderr.
 * --bench times batch-1 latency and full-batch throughput.
 *
 * Input is decoded as it is read (deploy_read.c): memory is the declared
 * array plus a constant, and a gzip bomb is refused as soon as its output
 * passes what its header declares.  --input and --labels must name regular
 * files (a FIFO is refused without blocking); '-' is standard input.
 *
 * Exit status: 0 success; 2 a usage error or bad input (unreadable file,
 * unknown format, truncated data, wrong shape), with a message; 1 when
 * memory (reading the input too) or writing the output fails, as --help
 * says.  Buffers are sized from the checked row count, and every row handed
 * to the model is complete.
 */
#if !defined(_POSIX_C_SOURCE) && !defined(_WIN32)
#define _POSIX_C_SOURCE 200809L /* open, fstat, fcntl, fdopen */
#endif
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__unix__) || defined(__APPLE__)
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#endif
#include "deploy.h"

#define NNA_ERR 2  /* bad input or usage */
#define NNA_FAIL 1 /* out of memory, cannot write */

struct opts {
    const char *input, *output, *labels;
    enum nna_format format;
    int have_scale;
    float scale;
    int bench;
};

static void usage(FILE *f, const char *prog)
{
    fprintf(f,
            "usage: %s [--input FILE] [--output FILE.npy] [--labels FILE] [--format auto|npy|"
            "idx|raw]\n"
            "       [--scale S] [--bench]\n"
            "\n"
            "Runs the model \"%s\" on the rows of FILE (standard input without --input):\n"
            ".npy, IDX or raw little-endian float32, gzip-compressed or not.  Prints the\n"
            "predicted class of each row, or writes the outputs to FILE.npy.  8-bit data is\n"
            "scaled by 1/255 unless --scale S is given.  --labels adds the accuracy on stderr;\n"
            "--bench prints batch-1 latency and batch-%d throughput.\n"
            "Exit status: 0 success, 2 bad usage or input, 1 out of memory or write error.\n",
            prog, nna_model.name, nna_model.batch);
}

static int parse(int argc, char **argv, struct opts *o)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout, argv[0]);
            exit(0);
        } else if (strcmp(a, "--bench") == 0) {
            o->bench = 1;
            continue;
        }
        if (!v) {
            fprintf(stderr, "%s: unknown option or missing value: '%s'\n", argv[0], a);
            return -1;
        }
        i++;
        if (strcmp(a, "--input") == 0)
            o->input = v;
        else if (strcmp(a, "--output") == 0)
            o->output = v;
        else if (strcmp(a, "--labels") == 0)
            o->labels = v;
        else if (strcmp(a, "--format") == 0) {
            if (strcmp(v, "auto") == 0)
                o->format = NNA_AUTO;
            else if (strcmp(v, "npy") == 0)
                o->format = NNA_NPY;
            else if (strcmp(v, "idx") == 0)
                o->format = NNA_IDX;
            else if (strcmp(v, "raw") == 0)
                o->format = NNA_RAW;
            else {
                fprintf(stderr, "%s: unknown --format '%s' (auto, npy, idx, raw)\n", argv[0], v);
                return -1;
            }
        } else if (strcmp(a, "--scale") == 0) {
            char *end;
            errno = 0;
            double s = strtod(v, &end);
            if (*v == '\0' || *end != '\0' || errno || !(s == s) || s > 3e38 || s < -3e38) {
                fprintf(stderr, "%s: --scale needs a number, got '%s'\n", argv[0], v);
                return -1;
            }
            o->have_scale = 1;
            o->scale = (float)s;
        } else {
            fprintf(stderr, "%s: unknown option '%s'\n", argv[0], a);
            return -1;
        }
    }
    return 0;
}

/* A source of bytes from an open file, a chunk at a time. */
struct file_src {
    FILE *f;
    unsigned char buf[1 << 16];
};

static int file_fill(void *ctx, const unsigned char **p, size_t *len)
{
    struct file_src *fs = ctx;
    *len = fread(fs->buf, 1, sizeof fs->buf, fs->f);
    *p = fs->buf;
    return *len == 0 && ferror(fs->f) ? -1 : 0;
}

/* Opens a file to read, refusing anything but a regular file before any
 * read: a FIFO with no writer would block open() itself, hence O_NONBLOCK
 * until fstat() has looked.  *size gets the file's size.  NULL with err set. */
static FILE *open_input(const char *path, uint64_t *size, char *err, size_t err_size)
{
#if defined(__unix__) || defined(__APPLE__)
    int fd = open(path, O_RDONLY | O_NONBLOCK);
    struct stat st;
    if (fd < 0) {
        snprintf(err, err_size, "cannot open: %s", strerror(errno));
        return NULL;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, err_size, "not a regular file%s: refused, as reading it could block or "
                 "never end", S_ISFIFO(st.st_mode) ? " but a FIFO (named pipe)"
                              : S_ISDIR(st.st_mode) ? " but a directory"
                              : S_ISCHR(st.st_mode) ? " but a character device" : "");
        close(fd);
        return NULL;
    }
    int flags = fcntl(fd, F_GETFL);
    FILE *f = flags >= 0 && fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) == 0 ? fdopen(fd, "rb")
                                                                          : NULL;
    if (!f) {
        snprintf(err, err_size, "cannot open: %s", strerror(errno));
        close(fd);
        return NULL;
    }
    *size = (uint64_t)st.st_size;
    return f;
#else
    FILE *f = fopen(path, "rb");
    if (!f)
        snprintf(err, err_size, "cannot open: %s", strerror(errno));
    *size = NNA_SIZE_UNKNOWN;
    return f;
#endif
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Reads and decodes a file (standard input for NULL or "-") as it
 * arrives; 0, or NNA_ERR (bad input), or NNA_FAIL (out of memory) after
 * printing why. */
static int load(const char *prog, const char *path, enum nna_format fmt, long row,
                struct nna_array *a)
{
    char err[400];
    int std = !path || strcmp(path, "-") == 0;
    const char *shown = std ? "(standard input)" : path;
    uint64_t size = NNA_SIZE_UNKNOWN;
    memset(a, 0, sizeof *a);
    struct file_src *fs = malloc(sizeof *fs);
    if (!fs) {
        fprintf(stderr, "%s: %s: out of memory\n", prog, shown);
        return NNA_FAIL;
    }
    fs->f = std ? stdin : open_input(path, &size, err, sizeof err);
    if (!fs->f) {
        fprintf(stderr, "%s: %s: %s\n", prog, shown, err);
        free(fs);
        return NNA_ERR;
    }
    if (fmt == NNA_AUTO && !std && (ends_with(path, ".raw") || ends_with(path, ".f32")))
        fmt = NNA_RAW;
    struct nna_src src = {.fill = file_fill, .ctx = fs};
    int rc = nna_read(&src, size, fmt, row, a, err, sizeof err);
    if (!std)
        fclose(fs->f);
    free(fs);
    if (rc) {
        fprintf(stderr, "%s: %s: %s\n", prog, shown, err);
        return rc == NNA_EMEM ? NNA_FAIL : NNA_ERR;
    }
    return 0;
}

static double now_s(void)
{
    struct timespec t;
    timespec_get(&t, TIME_UTC);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static long argmax(const float *row, long n)
{
    if (n == 1)
        return row[0] > 0.5f;
    long best = 0;
    for (long j = 1; j < n; j++)
        if (row[j] > row[best])
            best = j;
    return best;
}

static int write_npy(const char *path, const float *data, uint64_t rows)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    char dict[512];
    int len = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (%llu,",
                       (unsigned long long)rows);
    for (int i = 0; i < nna_model.out_rank; i++)
        len += snprintf(dict + len, sizeof dict - (size_t)len, "%s%ld", i ? ", " : " ",
                        nna_model.out_dims[i]);
    len += snprintf(dict + len, sizeof dict - (size_t)len, "), }");
    int total = (10 + len + 1 + 63) / 64 * 64; /* magic + header + '\n', 64-aligned */
    int pad = total - 10 - len - 1;
    unsigned char head[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0,
                              (unsigned char)((total - 10) & 0xff),
                              (unsigned char)((total - 10) >> 8)};
    int ok = fwrite(head, 1, 10, f) == 10 && fwrite(dict, 1, (size_t)len, f) == (size_t)len;
    for (int i = 0; i < pad && ok; i++)
        ok = fputc(' ', f) != EOF;
    ok = ok && fputc('\n', f) != EOF;
    uint64_t count = rows * (uint64_t)nna_model.out_size;
    for (uint64_t i = 0; i < count && ok; i++) {
        uint32_t u;
        memcpy(&u, &data[i], sizeof u);
        unsigned char b[4] = {(unsigned char)u, (unsigned char)(u >> 8),
                              (unsigned char)(u >> 16), (unsigned char)(u >> 24)};
        ok = fwrite(b, 1, 4, f) == 4;
    }
    return fclose(f) == 0 && ok ? 0 : -1;
}

static int run_rows(const float *x, float *y, uint64_t rows, void *ws)
{
    for (uint64_t s = 0; s < rows; s += (uint64_t)nna_model.batch) {
        int n = (int)(rows - s < (uint64_t)nna_model.batch ? rows - s : (uint64_t)nna_model.batch);
        if (nna_model.predict(x + s * (uint64_t)nna_model.in_size,
                              y + s * (uint64_t)nna_model.out_size, n, ws))
            return -1;
    }
    return 0;
}

static void bench(const float *x, uint64_t rows, float *y, void *ws)
{
    /* Batch-1 latency: the median of calls over about half a second. */
    enum { MAX_CALLS = 20001 };
    double *t = malloc(sizeof *t * MAX_CALLS);
    if (!t) {
        fprintf(stderr, "bench: out of memory\n");
        return;
    }
    int calls = 0;
    double start = now_s();
    while (calls < MAX_CALLS && (calls < 11 || now_s() - start < 0.5)) {
        double t0 = now_s();
        nna_model.predict(x + (uint64_t)calls % rows * (uint64_t)nna_model.in_size, y, 1, ws);
        t[calls++] = now_s() - t0;
    }
    for (int i = 1; i < calls; i++) /* insertion sort: a few thousand values at most */
        for (int j = i; j > 0 && t[j - 1] > t[j]; j--) {
            double tmp = t[j];
            t[j] = t[j - 1];
            t[j - 1] = tmp;
        }
    printf("latency_batch1_us: %.2f\n", t[calls / 2] * 1e6);
    free(t);
    /* Throughput: full batches (rows repeated when fewer) for half a second. */
    int b = nna_model.batch;
    uint64_t done = 0;
    start = now_s();
    double elapsed = 0;
    while (done < (uint64_t)b * 3 || elapsed < 0.5) {
        uint64_t s = done / (uint64_t)b % ((rows + (uint64_t)b - 1) / (uint64_t)b) * (uint64_t)b;
        int n = (int)(rows - s < (uint64_t)b ? rows - s : (uint64_t)b);
        nna_model.predict(x + s * (uint64_t)nna_model.in_size, y, n, ws);
        done += (uint64_t)b;
        elapsed = now_s() - start;
    }
    printf("throughput_samples_per_s: %.1f (batch %d)\n", (double)done / elapsed, b);
}

int main(int argc, char **argv)
{
    struct opts o = {0};
    if (parse(argc, argv, &o)) {
        fprintf(stderr, "Try '%s --help'.\n", argv[0]);
        return NNA_ERR;
    }
    const char *prog = argv[0];
    struct nna_array in = {0};
    uint64_t rows = 0;
    char err[400];
    if (o.input || !o.bench) {
        int rc = load(prog, o.input, o.format, nna_model.in_size, &in);
        if (rc)
            return rc;
        rows = nna_match_rows(&in, nna_model.in_rank, nna_model.in_dims, err, sizeof err);
        if (!rows) {
            fprintf(stderr, "%s: %s: %s\n", prog, o.input ? o.input : "(standard input)", err);
            nna_array_free(&in);
            return NNA_ERR;
        }
        float scale = o.have_scale ? o.scale : in.u8 ? 1.0f / 255.0f : 1.0f;
        if (scale != 1.0f)
            for (uint64_t i = 0; i < in.count; i++)
                in.data[i] *= scale;
    } else { /* --bench alone: one batch of zeros */
        rows = (uint64_t)nna_model.batch;
        in.count = rows * (uint64_t)nna_model.in_size;
        in.data = calloc((size_t)in.count, sizeof(float));
    }
    /* The labels are read and counted before any row is printed: a file of
     * the wrong length fails without first printing every class. */
    struct nna_array lab = {0};
    long k = 0; /* label values per row: 1 (class indices) or out_size (one-hot) */
    if (o.labels) {
        int rc = in.data ? load(prog, o.labels, NNA_AUTO, 1, &lab) : 0;
        if (!rc && in.data) {
            k = lab.count == rows                                       ? 1
                : lab.count == rows * (uint64_t)nna_model.out_size ? nna_model.out_size
                                                                   : 0;
            if (!k) {
                fprintf(stderr, "%s: %s: %llu labels for %llu rows\n", prog, o.labels,
                        (unsigned long long)lab.count, (unsigned long long)rows);
                rc = NNA_ERR;
            }
        }
        if (rc) {
            nna_array_free(&lab);
            nna_array_free(&in);
            return rc;
        }
    }
    size_t ws_bytes = nna_model.ws_bytes(nna_model.batch);
    void *ws = malloc(ws_bytes ? ws_bytes : 1);
    float *out = NULL;
    if (rows <= SIZE_MAX / sizeof(float) / (uint64_t)nna_model.out_size)
        out = malloc((size_t)(rows * (uint64_t)nna_model.out_size) * sizeof(float));
    int status = 0;
    if (!in.data || !ws || !out) {
        fprintf(stderr, "%s: out of memory\n", prog);
        status = NNA_FAIL;
    } else if (run_rows(in.data, out, rows, ws)) {
        fprintf(stderr, "%s: the model refused the input\n", prog);
        status = NNA_FAIL;
    } else if (o.output) {
        if (write_npy(o.output, out, rows)) {
            fprintf(stderr, "%s: cannot write '%s': %s\n", prog, o.output, strerror(errno));
            status = NNA_FAIL;
        }
    } else if (!o.bench || o.input) {
        for (uint64_t r = 0; r < rows; r++)
            printf("%ld\n", argmax(out + r * (uint64_t)nna_model.out_size, nna_model.out_size));
    }
    if (!status && k) {
        uint64_t right = 0;
        for (uint64_t r = 0; r < rows; r++) {
            float v = lab.data[r];
            long want = k > 1 ? argmax(lab.data + r * (uint64_t)k, k)
                        : v >= 0 && v < 1e9f ? (long)v : -1;
            right += argmax(out + r * (uint64_t)nna_model.out_size, nna_model.out_size) == want;
        }
        fprintf(stderr, "accuracy: %.4f (%llu of %llu)\n", (double)right / (double)rows,
                (unsigned long long)right, (unsigned long long)rows);
    }
    nna_array_free(&lab);
    if (!status && o.bench)
        bench(in.data, rows, out, ws);
    if (fflush(stdout) != 0 && !status) {
        fprintf(stderr, "%s: cannot write the output\n", prog);
        status = NNA_FAIL;
    }
    free(out);
    free(ws);
    nna_array_free(&in);
    return status;
}
