/*
 * test_data.c — arrays and the data loaders (runtime/train/array.c, runtime/io/data_idx.c,
 * data_npy.c, data_csv.c), through the public API only.
 *
 * Every fixture file is written at test time into a fresh mkdtemp() folder
 * that the teardown removes: IDX files by a small writer below, .npy files
 * byte by byte (so headers can be malformed on purpose), gzip files with
 * zlib.  Error cases assert the status and, with strstr, the key words and
 * the file path of the message.  The real Fashion-MNIST test set is used
 * when the dataset-fashion-mnist package is installed, and skipped otherwise.
 */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L /* mkdtemp */
#endif

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "nncc.h"

#ifndef FASHION_DIR /* overridable to check the skip */
#define FASHION_DIR "/usr/share/datasets/fashion-mnist"
#endif
#define PATH_CAP 1024

/* ---- Fixture: a private folder ----------------------------------------- */

struct fixture {
    char dir[512];
};

static void rm_rf(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0) return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (d) {
            struct dirent *e;
            while ((e = readdir(d)) != NULL) {
                if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
                char child[PATH_CAP];
                snprintf(child, sizeof child, "%s/%s", path, e->d_name);
                rm_rf(child);
            }
            closedir(d);
        }
        rmdir(path);
    } else {
        unlink(path);
    }
}

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof *fx);
    if (!fx) return -1;
    const char *tmp = getenv("TMPDIR");
    snprintf(fx->dir, sizeof fx->dir, "%s/nncc-test-data-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(fx->dir)) {
        free(fx);
        return -1;
    }
    nncc_clear_error();
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    rm_rf(fx->dir);
    free(fx);
    return 0;
}

/* out = <fixture folder>/name */
static char *path_in(void **state, const char *name, char out[PATH_CAP])
{
    const struct fixture *fx = *state;
    snprintf(out, PATH_CAP, "%s/%s", fx->dir, name);
    return out;
}

static int count_entries(void **state)
{
    const struct fixture *fx = *state;
    DIR *d = opendir(fx->dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return n;
}

/* ---- Files ------------------------------------------------------------- */

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(data, 1, n, fp), n);
    assert_int_equal(fclose(fp), 0);
}

static void write_text(const char *path, const char *text) { write_file(path, text, strlen(text)); }

/* The whole file; *n gets its size.  Free the result. */
static unsigned char *read_whole(const char *path, size_t *n)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    assert_int_equal(fseek(fp, 0, SEEK_END), 0);
    long size = ftell(fp);
    assert_true(size >= 0);
    rewind(fp);
    unsigned char *p = malloc((size_t)size + 1);
    assert_non_null(p);
    assert_int_equal(fread(p, 1, (size_t)size, fp), (size_t)size);
    fclose(fp);
    *n = (size_t)size;
    return p;
}

static void write_gz(const char *path, const void *data, size_t n)
{
    gzFile gz = gzopen(path, "wb9");
    assert_non_null(gz);
    assert_int_equal(gzwrite(gz, data, (unsigned)n), (int)n);
    assert_int_equal(gzclose(gz), Z_OK);
}

/* A growable byte buffer for building IDX and .npy files. */
struct bytes {
    unsigned char *p;
    size_t n, cap;
};

static void put(struct bytes *b, const void *data, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    memcpy(b->p + b->n, data, n);
    b->n += n;
}

static void put_be(struct bytes *b, uint64_t v, int size)
{
    for (int i = size - 1; i >= 0; i--) {
        unsigned char c = (unsigned char)(v >> (8 * i));
        put(b, &c, 1);
    }
}

static void put_le(struct bytes *b, uint64_t v, int size)
{
    for (int i = 0; i < size; i++) {
        unsigned char c = (unsigned char)(v >> (8 * i));
        put(b, &c, 1);
    }
}

/* An IDX header: 00 00 type ndims, then the dimensions. */
static void idx_header(struct bytes *b, int type, int ndims, const uint32_t *dims)
{
    put_be(b, (uint64_t)type, 3); /* 00 00 type */
    put_be(b, (uint64_t)ndims, 1);
    for (int i = 0; i < ndims; i++) put_be(b, dims[i], 4);
}

/* Writes b as path, gzip-compressed when gz; then frees it. */
static void save_bytes(struct bytes *b, const char *path, bool gz)
{
    if (gz) write_gz(path, b->p, b->n);
    else write_file(path, b->p, b->n);
    free(b->p);
    *b = (struct bytes){0};
}

/* A ubyte image file (n, rows, cols) with pixel(i) = (i * 37 + 11) % 256. */
static void write_images(const char *path, uint32_t n, uint32_t rows, uint32_t cols, bool gz)
{
    struct bytes b = {0};
    idx_header(&b, 0x08, 3, (uint32_t[]){n, rows, cols});
    for (uint32_t i = 0; i < n * rows * cols; i++) put_be(&b, (i * 37 + 11) % 256, 1);
    save_bytes(&b, path, gz);
}

static void write_labels(const char *path, const unsigned char *labels, uint32_t n, bool gz)
{
    struct bytes b = {0};
    idx_header(&b, 0x08, 1, (uint32_t[]){n});
    put(&b, labels, n);
    save_bytes(&b, path, gz);
}

/* Writes a .npy file with the given version and header dict, padded as
 * NumPy pads it, followed by n data bytes. */
static void write_npy(const char *path, int major, const char *dict, const void *data, size_t n)
{
    struct bytes b = {0};
    put(&b, "\x93NUMPY", 6);
    put_le(&b, (uint64_t)major, 1);
    put_le(&b, 0, 1);
    size_t pre = major == 1 ? 10 : 12;
    size_t hlen = strlen(dict) + 1;
    hlen += (64 - (pre + hlen) % 64) % 64;
    put_le(&b, hlen, major == 1 ? 2 : 4);
    put(&b, dict, strlen(dict));
    while (b.n < pre + hlen - 1) put(&b, " ", 1);
    put(&b, "\n", 1);
    if (n) put(&b, data, n);
    save_bytes(&b, path, false);
}

/* ---- Checks ------------------------------------------------------------ */

/* The last error has this status and contains every key (NULL-terminated). */
static void check_error_(enum nncc_status status, const char *file, int line, ...)
{
    const char *msg = nncc_last_error();
    if (nncc_last_status() != status)
        fail_msg("%s:%d: status %s, expected %s; message: %s", file, line,
                 nncc_status_name(nncc_last_status()), nncc_status_name(status), msg);
    va_list ap;
    va_start(ap, line);
    for (const char *key; (key = va_arg(ap, const char *)) != NULL;)
        if (!strstr(msg, key)) {
            va_end(ap);
            fail_msg("%s:%d: message lacks \"%s\": %s", file, line, key, msg);
        }
    va_end(ap);
}
#define check_error(status, ...) check_error_((status), __FILE__, __LINE__, __VA_ARGS__, NULL)

static void check_shape(const struct nncc_array *a, struct nncc_shape s)
{
    assert_non_null(a);
    assert_non_null(a->data);
    assert_int_equal(a->shape.rank, s.rank);
    for (int i = 0; i < s.rank; i++) assert_int_equal(a->shape.dim[i], s.dim[i]);
}

/* ---- Arrays ------------------------------------------------------------ */

static void test_array_new(void **state)
{
    (void)state;
    struct nncc_array *a = nncc_array_new(NNCC_SHAPE(2, 3, 4));
    check_shape(a, NNCC_SHAPE(2, 3, 4));
    assert_int_equal(nncc_array_size(a), 24);
    for (int i = 0; i < 24; i++) assert_true(a->data[i] == 0.0f);
    nncc_array_free(a);
    nncc_array_free(NULL);
    assert_int_equal(nncc_array_size(NULL), 0);

    assert_null(nncc_array_new(NNCC_SHAPE(3, 0)));
    check_error(NNCC_ERR_ARG, "dimension 1", "positive");
    assert_null(nncc_array_new(NNCC_SHAPE(-2)));
    check_error(NNCC_ERR_ARG, "positive");
    assert_null(nncc_array_new((struct nncc_shape){.rank = 0}));
    check_error(NNCC_ERR_ARG, "rank 0");
    assert_null(nncc_array_new((struct nncc_shape){.rank = NNCC_MAX_RANK + 1}));
    check_error(NNCC_ERR_ARG, "rank 9");
    assert_null(nncc_array_new(NNCC_SHAPE(INT64_MAX / 2, 3)));
    check_error(NNCC_ERR_ARG, "overflows");
    assert_null(nncc_array_new(NNCC_SHAPE(INT64_MAX / 2)));
    check_error(NNCC_ERR_ARG, "too large");

    struct nncc_data d = {nncc_array_new(NNCC_SHAPE(2)), nncc_array_new(NNCC_SHAPE(1))};
    nncc_data_free(&d);
    assert_null(d.x);
    assert_null(d.y);
    nncc_data_free(&d); /* twice is harmless */
    nncc_data_free(NULL);
}

/* ---- IDX --------------------------------------------------------------- */

static void idx_round_trip(void **state, bool gz)
{
    char im[PATH_CAP], lb[PATH_CAP];
    path_in(state, gz ? "img.idx3.gz" : "img.idx3", im);
    path_in(state, gz ? "lab.idx1.gz" : "lab.idx1", lb);
    const unsigned char labels[5] = {3, 0, 9, 1, 7};
    write_images(im, 5, 2, 3, gz);
    write_labels(lb, labels, 5, gz);

    struct nncc_data d = nncc_load_idx(im, lb, .one_hot = 10, .scale = 1 / 255.f);
    if (!d.x) fail_msg("%s", nncc_last_error());
    check_shape(d.x, NNCC_SHAPE(5, 2, 3, 1));
    check_shape(d.y, NNCC_SHAPE(5, 10));
    for (int i = 0; i < 30; i++) assert_true(d.x->data[i] == (float)((i * 37 + 11) % 256) * (1 / 255.f));
    for (int r = 0; r < 5; r++)
        for (int c = 0; c < 10; c++)
            assert_true(d.y->data[r * 10 + c] == (c == labels[r] ? 1.0f : 0.0f));
    nncc_data_free(&d);

    /* limit keeps a prefix; no one_hot keeps the label values; no scale keeps bytes */
    d = nncc_load_idx(im, lb, .limit = 3);
    if (!d.x) fail_msg("%s", nncc_last_error());
    check_shape(d.x, NNCC_SHAPE(3, 2, 3, 1));
    check_shape(d.y, NNCC_SHAPE(3));
    for (int i = 0; i < 18; i++) assert_true(d.x->data[i] == (float)((i * 37 + 11) % 256));
    for (int r = 0; r < 3; r++) assert_true(d.y->data[r] == labels[r]);
    nncc_data_free(&d);

    d = nncc_load_idx(im, lb, .limit = 1000); /* larger than n: everything */
    check_shape(d.x, NNCC_SHAPE(5, 2, 3, 1));
    nncc_data_free(&d);

    struct nncc_array *a = nncc_load_idx_file(im);
    check_shape(a, NNCC_SHAPE(5, 2, 3));
    assert_true(a->data[29] == (float)((29 * 37 + 11) % 256));
    nncc_array_free(a);
}

static void test_idx_round_trip_plain(void **state) { idx_round_trip(state, false); }
static void test_idx_round_trip_gz(void **state) { idx_round_trip(state, true); }

static void test_idx_types(void **state)
{
    char p[PATH_CAP];
    struct bytes b = {0};

    path_in(state, "int.idx", p);
    const int32_t ints[4] = {-1, 2147483647, -2147483647 - 1, 12345};
    idx_header(&b, 0x0C, 2, (uint32_t[]){2, 2});
    for (int i = 0; i < 4; i++) put_be(&b, (uint32_t)ints[i], 4);
    save_bytes(&b, p, false);
    struct nncc_array *a = nncc_load_idx_file(p);
    if (!a) fail_msg("%s", nncc_last_error());
    check_shape(a, NNCC_SHAPE(2, 2));
    for (int i = 0; i < 4; i++) assert_true(a->data[i] == (float)ints[i]);
    nncc_array_free(a);

    path_in(state, "float.idx.gz", p);
    const float floats[3] = {1.5f, -0.1f, 3.0e38f};
    idx_header(&b, 0x0D, 1, (uint32_t[]){3});
    for (int i = 0; i < 3; i++) {
        uint32_t u;
        memcpy(&u, &floats[i], 4);
        put_be(&b, u, 4);
    }
    save_bytes(&b, p, true);
    a = nncc_load_idx_file(p);
    if (!a) fail_msg("%s", nncc_last_error());
    check_shape(a, NNCC_SHAPE(3));
    assert_memory_equal(a->data, floats, sizeof floats);
    nncc_array_free(a);

    path_in(state, "double.idx", p);
    const double doubles[2] = {0.25, -1e10};
    idx_header(&b, 0x0E, 3, (uint32_t[]){1, 2, 1});
    for (int i = 0; i < 2; i++) {
        uint64_t u;
        memcpy(&u, &doubles[i], 8);
        put_be(&b, u, 8);
    }
    save_bytes(&b, p, false);
    a = nncc_load_idx_file(p);
    if (!a) fail_msg("%s", nncc_last_error());
    check_shape(a, NNCC_SHAPE(1, 2, 1));
    assert_true(a->data[0] == 0.25f && a->data[1] == -1e10f);
    nncc_array_free(a);

    path_in(state, "short_sbyte.idx", p);
    idx_header(&b, 0x0B, 1, (uint32_t[]){3});
    put_be(&b, 0xFFFE, 2);
    put_be(&b, 0x7FFF, 2);
    put_be(&b, 0x8000, 2);
    save_bytes(&b, p, false);
    a = nncc_load_idx_file(p);
    if (!a) fail_msg("%s", nncc_last_error());
    assert_true(a->data[0] == -2 && a->data[1] == 32767 && a->data[2] == -32768);
    nncc_array_free(a);

    idx_header(&b, 0x09, 1, (uint32_t[]){2});
    put_be(&b, 0x80, 1);
    put_be(&b, 0x7F, 1);
    save_bytes(&b, p, false);
    a = nncc_load_idx_file(p);
    if (!a) fail_msg("%s", nncc_last_error());
    assert_true(a->data[0] == -128 && a->data[1] == 127);
    nncc_array_free(a);
}

static void test_idx_bad_header(void **state)
{
    char p[PATH_CAP];
    path_in(state, "bad.idx", p);
    write_file(p, "\x01\x02\x08\x01\x00\x00\x00\x01\x05", 9);
    assert_null(nncc_load_idx_file(p));
    check_error(NNCC_ERR_FORMAT, "bad magic", "01 02 08 01", p);

    write_file(p, "\x00\x00\x0A\x01\x00\x00\x00\x01\x05", 9);
    assert_null(nncc_load_idx_file(p));
    check_error(NNCC_ERR_FORMAT, "unknown type code 0x0a", p);

    write_file(p, "\x00\x00\x08\x00", 4);
    assert_null(nncc_load_idx_file(p));
    check_error(NNCC_ERR_FORMAT, "number of dimensions", p);

    write_file(p, "\x00\x00\x08\x09", 4);
    assert_null(nncc_load_idx_file(p));
    check_error(NNCC_ERR_FORMAT, "number of dimensions: 9", p);

    write_file(p, "\x00\x00\x08\x02\x00\x00\x00\x02\x00\x00\x00\x00", 12);
    assert_null(nncc_load_idx_file(p));
    check_error(NNCC_ERR_FORMAT, "dimension 1", "is 0", p);

    write_file(p, "\x00\x00\x08\x02\x00\x00\x00\x02\x00", 9);
    assert_null(nncc_load_idx_file(p));
    check_error(NNCC_ERR_FORMAT, "truncated header", p);

    write_file(p, "\x00\x00", 2);
    assert_null(nncc_load_idx_file(p));
    check_error(NNCC_ERR_FORMAT, "too short", p);

    write_file(p, "", 0);
    assert_null(nncc_load_idx_file(p));
    check_error(NNCC_ERR_FORMAT, "too short", p);

    /* images must be 3-D, labels 1-D integers */
    char lb[PATH_CAP], im[PATH_CAP];
    path_in(state, "lab.idx", lb);
    path_in(state, "img.idx", im);
    write_labels(lb, (const unsigned char[]){1, 2}, 2, false);
    write_images(im, 2, 2, 2, false);
    struct nncc_data d = nncc_load_idx(lb, lb);
    assert_null(d.x);
    assert_null(d.y);
    check_error(NNCC_ERR_FORMAT, "has 1 dimensions; expected 3", lb);
    d = nncc_load_idx(im, im);
    assert_null(d.x);
    check_error(NNCC_ERR_FORMAT, "has 3 dimensions; expected 1", im);
    struct bytes b = {0};
    idx_header(&b, 0x0D, 1, (uint32_t[]){2});
    put_be(&b, 0, 8);
    save_bytes(&b, lb, false);
    d = nncc_load_idx(im, lb);
    assert_null(d.x);
    check_error(NNCC_ERR_FORMAT, "float", "integers", lb);
}

static void test_idx_truncated_and_trailing(void **state)
{
    char p[PATH_CAP];
    struct bytes b = {0};

    path_in(state, "short.idx", p);
    idx_header(&b, 0x08, 1, (uint32_t[]){10});
    put(&b, "1234567", 7);
    save_bytes(&b, p, false);
    assert_null(nncc_load_idx_file(p));
    check_error(NNCC_ERR_FORMAT, "truncated", "10 data bytes", "has 7", p);

    path_in(state, "long.idx", p);
    idx_header(&b, 0x0C, 1, (uint32_t[]){2});
    put(&b, "123456789", 9);
    save_bytes(&b, p, false);
    assert_null(nncc_load_idx_file(p));
    check_error(NNCC_ERR_FORMAT, "trailing bytes", "8 data bytes", "has 9", p);

    /* A complete gzip stream holding less data than the header announces. */
    path_in(state, "short.idx.gz", p);
    idx_header(&b, 0x08, 1, (uint32_t[]){10});
    put(&b, "1234567", 7);
    save_bytes(&b, p, true);
    assert_null(nncc_load_idx_file(p));
    /* the plain file's message: the parser words both (codegen/aot/formats.c) */
    check_error(NNCC_ERR_FORMAT, "truncated data", "need 10 data bytes", "has 7", p);

    /* … and more. */
    path_in(state, "long.idx.gz", p);
    idx_header(&b, 0x08, 1, (uint32_t[]){4});
    put(&b, "123456", 6);
    save_bytes(&b, p, true);
    assert_null(nncc_load_idx_file(p));
    check_error(NNCC_ERR_FORMAT, "trailing bytes", "need 4 data bytes", "has 6", p);

    /* A gzip file cut in the middle of its deflate stream. */
    path_in(state, "cut.idx.gz", p);
    idx_header(&b, 0x08, 1, (uint32_t[]){4000});
    uint32_t x = 12345;
    for (int i = 0; i < 4000; i++) {
        x = x * 1103515245u + 12345u; /* incompressible bytes */
        put_be(&b, x >> 24, 1);
    }
    save_bytes(&b, p, true);
    size_t n;
    unsigned char *gz = read_whole(p, &n);
    assert_true(n > 3000);
    write_file(p, gz, n / 2);
    assert_null(nncc_load_idx_file(p));
    check_error(NNCC_ERR_FORMAT, "truncated", p);

    /* Only the 8-byte trailer missing: all data arrives, then the stream ends early. */
    write_file(p, gz, n - 8);
    assert_null(nncc_load_idx_file(p));
    check_error(NNCC_ERR_FORMAT, "truncated", p);

    /* A damaged CRC: zlib's integrity check. */
    gz[n - 6] ^= 0x55;
    write_file(p, gz, n);
    assert_null(nncc_load_idx_file(p));
    check_error(NNCC_ERR_FORMAT, "corrupt gzip data", p);
    free(gz);
}

static void test_idx_huge_dimensions(void **state)
{
    char p[PATH_CAP];
    struct bytes b = {0};
    const uint32_t big[4] = {0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu};
    for (int gz = 0; gz < 2; gz++) {
        path_in(state, gz ? "huge.idx.gz" : "huge.idx", p);
        idx_header(&b, 0x08, 4, big);
        put(&b, "abcd", 4);
        save_bytes(&b, p, gz);
        assert_null(nncc_load_idx_file(p));
        check_error(NNCC_ERR_FORMAT, "dimension overflow", "4294967295 x 4294967295", p);
    }

    /* 2^31 bytes claimed by a gzip file of ~40 bytes: refused before allocating. */
    path_in(state, "bomb.idx.gz", p);
    idx_header(&b, 0x08, 1, (uint32_t[]){0x80000000u});
    put(&b, "0123456789", 10);
    save_bytes(&b, p, true);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_true(st.st_size < 100);
    assert_null(nncc_load_idx_file(p));
    check_error(NNCC_ERR_FORMAT, "2147483648 bytes", "gzip cannot expand", p);

    /* The same claim in a plain file is caught by the size check. */
    path_in(state, "bomb.idx", p);
    idx_header(&b, 0x0E, 2, (uint32_t[]){0x10000u, 0x10000u});
    put(&b, "0123456789", 10);
    save_bytes(&b, p, false);
    assert_null(nncc_load_idx_file(p));
    check_error(NNCC_ERR_FORMAT, "truncated", "34359738368 data bytes", "has 10", p);
}

static void test_idx_count_mismatch(void **state)
{
    char im[PATH_CAP], lb[PATH_CAP];
    path_in(state, "img.idx", im);
    path_in(state, "lab.idx.gz", lb);
    write_images(im, 3, 2, 2, false);
    write_labels(lb, (const unsigned char[]){1, 2}, 2, true);
    struct nncc_data d = nncc_load_idx(im, lb, .one_hot = 10);
    assert_null(d.x);
    assert_null(d.y);
    check_error(NNCC_ERR_FORMAT, "has 3 samples but labels file", "has 2", im, lb);
}

static void test_idx_label_out_of_range(void **state)
{
    char im[PATH_CAP], lb[PATH_CAP];
    path_in(state, "img.idx", im);
    path_in(state, "lab.idx", lb);
    write_images(im, 4, 2, 2, false);
    write_labels(lb, (const unsigned char[]){1, 9, 10, 2}, 4, false);
    struct nncc_data d = nncc_load_idx(im, lb, .one_hot = 10);
    assert_null(d.x);
    assert_null(d.y);
    check_error(NNCC_ERR_FORMAT, "row 2", "label 10", "one_hot = 10", lb);

    /* a limit that stops before the bad row loads fine; without one_hot any label does */
    d = nncc_load_idx(im, lb, .one_hot = 10, .limit = 2);
    check_shape(d.y, NNCC_SHAPE(2, 10));
    nncc_data_free(&d);
    d = nncc_load_idx(im, lb);
    check_shape(d.y, NNCC_SHAPE(4));
    assert_true(d.y->data[2] == 10.0f);
    nncc_data_free(&d);

    /* int labels may be negative */
    struct bytes b = {0};
    idx_header(&b, 0x0C, 1, (uint32_t[]){4});
    for (int i = 0; i < 4; i++) put_be(&b, i == 3 ? 0xFFFFFFFFu : 1u, 4);
    save_bytes(&b, lb, false);
    d = nncc_load_idx(im, lb, .one_hot = 3);
    assert_null(d.x);
    check_error(NNCC_ERR_FORMAT, "row 3", "label -1", lb);
}

static void test_idx_bad_arguments(void **state)
{
    char im[PATH_CAP], lb[PATH_CAP];
    path_in(state, "missing-images.idx", im);
    path_in(state, "lab.idx", lb);
    write_labels(lb, (const unsigned char[]){1}, 1, false);

    assert_null(nncc_load_idx_file(im));
    check_error(NNCC_ERR_IO, "cannot open", "No such file", im);
    struct nncc_data d = nncc_load_idx(im, lb);
    assert_null(d.x);
    check_error(NNCC_ERR_IO, "cannot open", im);
    d = nncc_load_idx(lb, im); /* the missing one second: the first is closed again */
    check_error(NNCC_ERR_IO, im);

    const struct fixture *fx = *state;
    assert_null(nncc_load_idx_file(fx->dir));
    check_error(NNCC_ERR_IO, "not a regular file", fx->dir);

    assert_null(nncc_load_idx_file(NULL));
    check_error(NNCC_ERR_ARG, "NULL");
    d = nncc_load_idx(NULL, lb);
    check_error(NNCC_ERR_ARG, "images path is NULL");
    d = nncc_load_idx(lb, lb, .one_hot = -1);
    check_error(NNCC_ERR_ARG, "one_hot");
    d = nncc_load_idx(lb, lb, .limit = -5);
    check_error(NNCC_ERR_ARG, "limit");
    d = nncc_load_idx(lb, lb, .scale = NAN);
    check_error(NNCC_ERR_ARG, "scale");
    assert_null(d.x);
}

static void test_fashion_mnist(void **state)
{
    (void)state;
    const char *im = FASHION_DIR "/t10k-images-idx3-ubyte.gz";
    const char *lb = FASHION_DIR "/t10k-labels-idx1-ubyte.gz";
    if (access(im, R_OK) != 0 || access(lb, R_OK) != 0) {
        print_message("skipped: Fashion-MNIST not found in " FASHION_DIR
                      " (install dataset-fashion-mnist)\n");
        skip();
    }
    struct nncc_data d = nncc_load_idx(im, lb, .one_hot = 10, .scale = 1 / 255.f);
    if (!d.x) fail_msg("%s", nncc_last_error());
    check_shape(d.x, NNCC_SHAPE(10000, 28, 28, 1));
    check_shape(d.y, NNCC_SHAPE(10000, 10));
    float lo = 1, hi = 0;
    for (int64_t i = 0; i < nncc_array_size(d.x); i++) {
        lo = d.x->data[i] < lo ? d.x->data[i] : lo;
        hi = d.x->data[i] > hi ? d.x->data[i] : hi;
    }
    assert_true(lo == 0.0f && hi == 1.0f);
    for (int c = 0; c < 10; c++) assert_true(d.y->data[c] == (c == 9)); /* ankle boot */
    for (int r = 0; r < 10000; r++) {
        float sum = 0;
        for (int c = 0; c < 10; c++) sum += d.y->data[r * 10 + c];
        assert_true(sum == 1.0f);
    }
    nncc_data_free(&d);

    d = nncc_load_idx(im, lb, .limit = 100);
    check_shape(d.x, NNCC_SHAPE(100, 28, 28, 1));
    assert_true(d.y->data[0] == 9.0f);
    nncc_data_free(&d);
}

/* ---- NPY --------------------------------------------------------------- */

static void test_npy_round_trip(void **state)
{
    char p[PATH_CAP];
    path_in(state, "a.npy", p);
    struct nncc_array *a = nncc_array_new(NNCC_SHAPE(3, 4));
    assert_non_null(a);
    for (int i = 0; i < 12; i++) a->data[i] = (float)i * 0.37f - 2.0f;
    a->data[5] = -0.0f;
    a->data[7] = 1e-40f; /* a subnormal survives too */
    assert_int_equal(nncc_save_npy(p, a), NNCC_OK);
    assert_int_equal(count_entries(state), 1); /* no temporary file left */

    size_t n;
    unsigned char *raw = read_whole(p, &n);
    assert_memory_equal(raw, "\x93NUMPY\x01\x00", 8);
    size_t hlen = raw[8] | (size_t)raw[9] << 8;
    assert_int_equal((10 + hlen) % 64, 0);
    assert_int_equal(n, 10 + hlen + 48);
    assert_int_equal(raw[10 + hlen - 1], '\n');
    raw[10 + hlen - 1] = '\0';
    assert_non_null(strstr((char *)raw + 10, "{'descr': '<f4', 'fortran_order': False, "
                                             "'shape': (3, 4), }"));
    for (int i = 0; i < 12; i++) {
        uint32_t u;
        memcpy(&u, &a->data[i], 4);
        const unsigned char *q = raw + 10 + hlen + 4 * i;
        assert_int_equal(q[0] | q[1] << 8 | q[2] << 16 | (uint32_t)q[3] << 24, u);
    }
    free(raw);

    struct nncc_array *b = nncc_load_npy(p);
    if (!b) fail_msg("%s", nncc_last_error());
    check_shape(b, NNCC_SHAPE(3, 4));
    assert_memory_equal(a->data, b->data, 12 * sizeof(float));
    nncc_array_free(b);
    nncc_array_free(a);

    /* 1-D is written as (5,); saving over an existing file replaces it */
    a = nncc_array_new(NNCC_SHAPE(5));
    a->data[4] = 42;
    assert_int_equal(nncc_save_npy(p, a), NNCC_OK);
    raw = read_whole(p, &n);
    raw[n - 20 - 1] = '\0';
    assert_non_null(strstr((char *)raw + 10, "'shape': (5,), }"));
    free(raw);
    b = nncc_load_npy(p);
    check_shape(b, NNCC_SHAPE(5));
    assert_true(b->data[4] == 42.0f);
    nncc_array_free(b);
    nncc_array_free(a);
    assert_int_equal(count_entries(state), 1);
}

static void test_npy_save_errors(void **state)
{
    char p[PATH_CAP];
    path_in(state, "a.npy", p);
    assert_int_equal(nncc_save_npy(p, NULL), NNCC_ERR_ARG);
    check_error(NNCC_ERR_ARG, "NULL", p);
    float one = 1;
    struct nncc_array empty = {.shape = {.rank = 2, .dim = {3, 0}}, .data = &one};
    assert_int_equal(nncc_save_npy(p, &empty), NNCC_ERR_ARG);
    check_error(NNCC_ERR_ARG, "empty", p);
    struct nncc_array scalar = {.shape = {.rank = 0}, .data = &one};
    assert_int_equal(nncc_save_npy(p, &scalar), NNCC_ERR_ARG);
    check_error(NNCC_ERR_ARG, "rank 0", p);
    struct nncc_array ok = {.shape = NNCC_SHAPE(1), .data = &one};
    assert_int_equal(nncc_save_npy(NULL, &ok), NNCC_ERR_ARG);
    path_in(state, "no/such/folder/a.npy", p);
    assert_int_equal(nncc_save_npy(p, &ok), NNCC_ERR_IO);
    check_error(NNCC_ERR_IO, "no/such/folder/a.npy");
    assert_int_equal(count_entries(state), 0);
}

static void test_npy_dtypes(void **state)
{
    char p[PATH_CAP];
    path_in(state, "t.npy", p);
    struct bytes b = {0};

    const double f8[3] = {0.5, -3.0, 65536.25};
    for (int i = 0; i < 3; i++) {
        uint64_t u;
        memcpy(&u, &f8[i], 8);
        put_le(&b, u, 8);
    }
    write_npy(p, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }", b.p, b.n);
    b.n = 0;
    struct nncc_array *a = nncc_load_npy(p);
    if (!a) fail_msg("%s", nncc_last_error());
    check_shape(a, NNCC_SHAPE(3));
    assert_true(a->data[0] == 0.5f && a->data[1] == -3.0f && a->data[2] == 65536.25f);
    nncc_array_free(a);

    /* other key order, double quotes, odd whitespace, no trailing comma */
    write_npy(p, 1, "{ \"shape\" : ( 2 , 2 ) ,\"descr\":\"|u1\",'fortran_order':False}",
              "\x00\xff\x07\x80", 4);
    a = nncc_load_npy(p);
    if (!a) fail_msg("%s", nncc_last_error());
    check_shape(a, NNCC_SHAPE(2, 2));
    assert_true(a->data[0] == 0 && a->data[1] == 255 && a->data[2] == 7 && a->data[3] == 128);
    nncc_array_free(a);

    const int64_t i8[3] = {-5, (int64_t)1 << 40, INT64_MIN};
    for (int i = 0; i < 3; i++) put_le(&b, (uint64_t)i8[i], 8);
    write_npy(p, 1, "{'descr': '<i8', 'fortran_order': False, 'shape': (1, 3, 1), }", b.p, b.n);
    b.n = 0;
    a = nncc_load_npy(p);
    if (!a) fail_msg("%s", nncc_last_error());
    check_shape(a, NNCC_SHAPE(1, 3, 1));
    assert_true(a->data[0] == -5.0f && a->data[1] == 1099511627776.0f &&
                a->data[2] == -9223372036854775808.0f);
    nncc_array_free(a);

    /* a scalar becomes (1,) */
    put_le(&b, 0x40490fdb, 4); /* pi as float32 */
    write_npy(p, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (), }", b.p, b.n);
    a = nncc_load_npy(p);
    if (!a) fail_msg("%s", nncc_last_error());
    check_shape(a, NNCC_SHAPE(1));
    assert_true(a->data[0] == 3.14159274f);
    nncc_array_free(a);

    /* version 2.0: a 4-byte header length */
    write_npy(p, 2, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", b.p, b.n);
    a = nncc_load_npy(p);
    if (!a) fail_msg("%s", nncc_last_error());
    check_shape(a, NNCC_SHAPE(1));
    assert_true(a->data[0] == 3.14159274f);
    nncc_array_free(a);
    free(b.p);
}

static void test_npy_rejects(void **state)
{
    char p[PATH_CAP];
    path_in(state, "bad.npy", p);
    const char data[16] = {0};

    write_npy(p, 1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", data, 16);
    assert_null(nncc_load_npy(p));
    check_error(NNCC_ERR_FORMAT, "Fortran order is not supported", p);

    write_npy(p, 1, "{'descr': '>f4', 'fortran_order': False, 'shape': (4,), }", data, 16);
    assert_null(nncc_load_npy(p));
    check_error(NNCC_ERR_FORMAT, "'>f4'", "big-endian", p);

    write_npy(p, 1, "{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }", data, 16);
    assert_null(nncc_load_npy(p));
    check_error(NNCC_ERR_FORMAT, "dtype '<c8' is not supported", p);

    write_npy(p, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }", data, 16);
    assert_null(nncc_load_npy(p));
    check_error(NNCC_ERR_FORMAT, "truncated data", "24 data bytes", "has 16", p);

    write_npy(p, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", data, 16);
    assert_null(nncc_load_npy(p));
    check_error(NNCC_ERR_FORMAT, "trailing bytes", "12 data bytes", "has 16", p);

    write_npy(p, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 0), }", NULL, 0);
    assert_null(nncc_load_npy(p));
    check_error(NNCC_ERR_FORMAT, "dimension 1", "empty", p);

    write_npy(p, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': "
                    "(4294967296, 4294967296, 4294967296), }", data, 16);
    assert_null(nncc_load_npy(p));
    check_error(NNCC_ERR_FORMAT, "overflows", p);

    write_npy(p, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': "
                    "(1, 1, 1, 1, 1, 1, 1, 1, 1), }", data, 4);
    assert_null(nncc_load_npy(p));
    check_error(NNCC_ERR_FORMAT, "more than 8 dimensions", p);

    /* garbage and near-misses in the header dict */
    const char *bad[][2] = {
        {"hello", "not a dict"},
        {"{'descr': '<f4', 'fortran_order': False}", "no 'shape'"},
        {"{'descr': '<f4', 'shape': (4,)}", "no 'fortran_order'"},
        {"{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (4,)}", "twice"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (4,), 'x': 1}", "unknown key"},
        {"{'descr': '<f4', 'fortran_order': 0, 'shape': (4,)}", "neither True nor False"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (4)}", "not a tuple"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (-4,)}", "not a tuple"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (4,)} x", "after the header"},
        {"{'descr': '<f4' 'fortran_order': False, 'shape': (4,)}", "expected ','"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (4,", "not a tuple"},
        {"{'descr: '<f4', 'fortran_order': False, 'shape': (4,)}", "expected ':'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_npy(p, 1, bad[i][0], data, 16);
        assert_null(nncc_load_npy(p));
        check_error(NNCC_ERR_FORMAT, "malformed header", bad[i][1], p);
    }

    /* a header length past the end of the file */
    write_file(p, "\x93NUMPY\x01\x00\x88\x13{'descr': '<f4'}", 26);
    assert_null(nncc_load_npy(p));
    check_error(NNCC_ERR_FORMAT, "header length 5000 runs past the end", "26 bytes", p);
    write_file(p, "\x93NUMPY\x02\x00\x00\x00\x00\x40{}", 14);
    assert_null(nncc_load_npy(p));
    check_error(NNCC_ERR_FORMAT, "header length 1073741824 is too large", p);

    write_file(p, "\x93NUMPX\x01\x00\x00\x00", 10);
    assert_null(nncc_load_npy(p));
    check_error(NNCC_ERR_FORMAT, "bad magic", "93 4e 55 4d 50 58", p);
    write_file(p, "\x93NUMPY\x04\x00\x00\x00", 10);
    assert_null(nncc_load_npy(p));
    check_error(NNCC_ERR_FORMAT, "unsupported version 4.0", p);
    write_file(p, "\x93NUMPY\x01", 7);
    assert_null(nncc_load_npy(p));
    check_error(NNCC_ERR_FORMAT, "too short", p);
    write_file(p, "\x93NUMPY\x01\x00\x08\x00{}\x00     ", 18);
    assert_null(nncc_load_npy(p));
    check_error(NNCC_ERR_FORMAT, "NUL", p);

    path_in(state, "missing.npy", p);
    assert_null(nncc_load_npy(p));
    check_error(NNCC_ERR_IO, "cannot open", p);
    assert_null(nncc_load_npy(NULL));
    check_error(NNCC_ERR_ARG, "NULL");
}

/* ---- CSV --------------------------------------------------------------- */

static void test_csv_load(void **state)
{
    char p[PATH_CAP];
    path_in(state, "a.csv", p);

    write_text(p, "x,y,z\n1,2,3\n 4.5 ,\t-6e2, 0.125\n");
    struct nncc_array *a = nncc_load_csv(p, .header = true);
    if (!a) fail_msg("%s", nncc_last_error());
    check_shape(a, NNCC_SHAPE(2, 3));
    const float want[6] = {1, 2, 3, 4.5f, -600, 0.125f};
    assert_memory_equal(a->data, want, sizeof want);
    nncc_array_free(a);

    write_text(p, "1;2\n3;-4"); /* no final newline */
    a = nncc_load_csv(p, .delimiter = ';');
    if (!a) fail_msg("%s", nncc_last_error());
    check_shape(a, NNCC_SHAPE(2, 2));
    assert_true(a->data[0] == 1 && a->data[1] == 2 && a->data[2] == 3 && a->data[3] == -4);
    nncc_array_free(a);

    write_text(p, "a,b\r\n1,2\r\n3,4\r\n\r\n\n"); /* CRLF, blank lines at the end */
    a = nncc_load_csv(p, .header = true);
    if (!a) fail_msg("%s", nncc_last_error());
    check_shape(a, NNCC_SHAPE(2, 2));
    assert_true(a->data[0] == 1 && a->data[3] == 4);
    nncc_array_free(a);

    write_text(p, "\xEF\xBB\xBF" "7\n8\n9\n"); /* one column, after a UTF-8 BOM */
    a = nncc_load_csv(p);
    check_shape(a, NNCC_SHAPE(3, 1));
    assert_true(a->data[2] == 9);
    nncc_array_free(a);

    write_text(p, "\xEF\xBB\xBF" "a,b\n1,2"); /* a BOM before the header */
    a = nncc_load_csv(p, .header = true);
    check_shape(a, NNCC_SHAPE(1, 2));
    assert_true(a->data[0] == 1 && a->data[1] == 2);
    nncc_array_free(a);

    write_text(p, "1\t2\n3\t4\n");
    a = nncc_load_csv(p, .delimiter = '\t');
    check_shape(a, NNCC_SHAPE(2, 2));
    nncc_array_free(a);
}

static void test_csv_errors(void **state)
{
    char p[PATH_CAP];
    path_in(state, "bad.csv", p);

    write_text(p, "a,b,c\n1,2,3\n4,5\n");
    assert_null(nncc_load_csv(p, .header = true));
    check_error(NNCC_ERR_FORMAT, "line 3 has 2 columns, expected 3", p);

    write_text(p, "1,2\n3,4,5\n");
    assert_null(nncc_load_csv(p));
    check_error(NNCC_ERR_FORMAT, "line 2 has 3 columns, expected 2", p);

    write_text(p, "1,2\n3,abc\n");
    assert_null(nncc_load_csv(p));
    check_error(NNCC_ERR_FORMAT, "line 2, column 2", "'abc' is not a number", p);

    write_text(p, "1,2x\n");
    assert_null(nncc_load_csv(p));
    check_error(NNCC_ERR_FORMAT, "line 1, column 2", "'2x' is not a number", p);

    write_text(p, "1,,2\n");
    assert_null(nncc_load_csv(p));
    check_error(NNCC_ERR_FORMAT, "line 1, column 2: empty field", p);

    write_text(p, "1,nan\n");
    assert_null(nncc_load_csv(p));
    check_error(NNCC_ERR_FORMAT, "line 1, column 2", "not a finite number", p);

    write_text(p, "1e39\n");
    assert_null(nncc_load_csv(p));
    check_error(NNCC_ERR_FORMAT, "line 1, column 1", "out of float32 range", p);

    write_text(p, "1,2\n\n3,4\n");
    assert_null(nncc_load_csv(p));
    check_error(NNCC_ERR_FORMAT, "line 2 is empty", p);

    write_text(p, "1,2\n\"3\",4\n");
    assert_null(nncc_load_csv(p));
    check_error(NNCC_ERR_FORMAT, "line 2, column 1", "not a number", p);

    write_text(p, "");
    assert_null(nncc_load_csv(p));
    check_error(NNCC_ERR_FORMAT, "empty file", p);

    write_text(p, "a,b\n");
    assert_null(nncc_load_csv(p, .header = true));
    check_error(NNCC_ERR_FORMAT, "no data rows", p);

    write_text(p, "\n\n");
    assert_null(nncc_load_csv(p));
    check_error(NNCC_ERR_FORMAT, "no data rows", p);

    write_text(p, "1,2\n");
    assert_null(nncc_load_csv(p, .delimiter = '.'));
    check_error(NNCC_ERR_ARG, "delimiter", p);

    path_in(state, "missing.csv", p);
    assert_null(nncc_load_csv(p));
    check_error(NNCC_ERR_IO, "cannot open", p);
    assert_null(nncc_load_csv(NULL));
    check_error(NNCC_ERR_ARG, "NULL");
}

/* A 1 GiB file (sparse: NUL bytes after the first line) whose first line
 * is bad: refused at once, without reading or keeping the rest (the loader
 * once read the whole file first: 1 GiB of memory and seconds). */
static void test_csv_streams(void **state)
{
    char p[PATH_CAP];
    path_in(state, "big.csv", p);
    const char *lines[] = {"1,abc\n", "1,2\n3,4\n"};
    const char *want[] = {"line 1, column 2: 'abc' is not a number",
                          "line 3, column 1: '????????????????????????????????????????...' is not "
                          "a number"};
    for (int k = 0; k < 2; k++) {
        write_text(p, lines[k]);
        assert_int_equal(truncate(p, (off_t)1 << 30), 0);
        struct rusage before, after;
        getrusage(RUSAGE_SELF, &before);
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        assert_null(nncc_load_csv(p));
        clock_gettime(CLOCK_MONOTONIC, &t1);
        getrusage(RUSAGE_SELF, &after);
        check_error(NNCC_ERR_FORMAT, want[k], p);
        /* At most a few chunks read: no more than 64 MiB more memory, fast. */
        long grown_kib = after.ru_maxrss - before.ru_maxrss;
        double secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
        if (grown_kib > 64 * 1024 || secs > 1.0)
            fail_msg("a bad line %d took %ld KiB more memory and %.2f s", k + 1, grown_kib, secs);
        unlink(p);
    }
    /* Only non-blank characters count towards the field limit: "2" then 300
     * blanks and "\r\n" is 2; blanks inside a field are quoted as they are. */
    char line[400];
    snprintf(line, sizeof line, "1,2%300s\r\n", "");
    write_text(p, line);
    struct nncc_array *a = nncc_load_csv(p);
    check_shape(a, NNCC_SHAPE(1, 2));
    assert_true(a->data[0] == 1.0f && a->data[1] == 2.0f);
    nncc_array_free(a);
    snprintf(line, sizeof line, "1,x%300s\r\n", "");
    write_text(p, line);
    assert_null(nncc_load_csv(p));
    check_error(NNCC_ERR_FORMAT, "line 1, column 2: 'x' is not a number", p);
    write_text(p, "1 \t2\n");
    assert_null(nncc_load_csv(p));
    check_error(NNCC_ERR_FORMAT, "line 1, column 1: '1 ?2' is not a number", p);
}

/* Every loader refuses a FIFO at once, naming it, rather than blocking in
 * open() or read() for a writer that never comes.  alarm() turns a
 * regression into a failure (SIGALRM) instead of a hang. */
static void test_loaders_refuse_fifo(void **state)
{
    char p[PATH_CAP], ok[PATH_CAP];
    path_in(state, "fifo", p);
    assert_int_equal(mkfifo(p, 0600), 0);
    alarm(20);
    assert_null(nncc_load_csv(p));
    check_error(NNCC_ERR_IO, "FIFO", p);
    assert_null(nncc_load_npy(p));
    check_error(NNCC_ERR_IO, "FIFO", p);
    assert_null(nncc_load_idx_file(p));
    check_error(NNCC_ERR_IO, "FIFO", p);
    path_in(state, "labels.idx", ok);
    write_file(ok, "\0\0\x08\x01\0\0\0\x01\x07", 9); /* a good labels file */
    struct nncc_data d = nncc_load_idx(p, ok);
    assert_null(d.x);
    check_error(NNCC_ERR_IO, "FIFO", p);
    alarm(0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_array_new),
        cmocka_unit_test_setup_teardown(test_idx_round_trip_plain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idx_round_trip_gz, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idx_types, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idx_bad_header, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idx_truncated_and_trailing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idx_huge_dimensions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idx_count_mismatch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idx_label_out_of_range, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idx_bad_arguments, setup, teardown),
        cmocka_unit_test(test_fashion_mnist),
        cmocka_unit_test_setup_teardown(test_npy_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_npy_save_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_npy_dtypes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_npy_rejects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_csv_load, setup, teardown),
        cmocka_unit_test_setup_teardown(test_csv_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_csv_streams, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loaders_refuse_fifo, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
