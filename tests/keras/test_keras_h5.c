/*
 * test_keras_h5.c — the HDF5 reader and writer of Keras model files
 * (runtime/io/keras_h5.c).
 *
 * - Reading files written by real h5py (tests/keras/h5cases/, made by
 *   make_h5_cases.py): every string attribute form (vlen UTF-8, fixed
 *   ASCII, bytes, one-element array), every list form (array of vlen or
 *   fixed strings, h5py's empty float64 array for []), numeric datasets of
 *   each type and rank 0..4 with exact values, nested groups, names with ':'.
 * - Errors, each asserted to name the file and the object: missing objects,
 *   wrong types (string, compound, enum, reference datasets; numbers where
 *   strings are expected), soft and external links, rank > NNCC_MAX_RANK,
 *   a wrong element count, huge declared sizes, truncated files, a file that
 *   is not HDF5, a FIFO (refused without blocking), over-long paths.
 * - Writing: kh5_create → kh5_image → kh5_open_image round trips of every
 *   writer form.  With KH5_KEEP_DIR set, the written image is also saved
 *   there as written.h5 (a developer checks it with h5py; CI has none).
 */
#define _XOPEN_SOURCE 700
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include <nncc.h>
#include "runtime/io/keras_h5.h"

#define CASES NNCC_SOURCE_DIR "/tests/keras/h5cases/"

static struct kh5 *open_case(const char *name)
{
    char path[512];
    snprintf(path, sizeof path, CASES "%s", name);
    struct kh5 *f = kh5_open(path, name);
    if (!f) fail_msg("cannot open %s: %s", path, nncc_last_error());
    return f;
}

/* The last error contains each of the given strings. */
static void assert_error(const char *a, const char *b, const char *c)
{
    const char *msg = nncc_last_error();
    assert_true(nncc_last_status() != NNCC_OK);
    const char *want[3] = {a, b, c};
    for (int i = 0; i < 3; i++)
        if (want[i] && !strstr(msg, want[i]))
            fail_msg("error \"%s\" does not contain \"%s\"", msg, want[i]);
}

static void want_string(struct kh5 *f, const char *obj, const char *name, const char *want)
{
    char *s = kh5_attr_string(f, obj, name);
    if (!s) fail_msg("%s/%s: %s", obj, name, nncc_last_error());
    assert_string_equal(s, want);
    free(s);
}

static void want_strings(struct kh5 *f, const char *obj, const char *name, int n,
                           const char *const *want)
{
    char **s = NULL;
    int got = kh5_attr_strings(f, obj, name, &s);
    if (got < 0) fail_msg("%s/%s: %s", obj, name, nncc_last_error());
    assert_int_equal(got, n);
    assert_non_null(s);
    for (int i = 0; i < n; i++) assert_string_equal(s[i], want[i]);
    kh5_strings_free(s, got);
}

static void want_f32(struct kh5 *f, const char *path, int rank, const int64_t *dims, int64_t n,
                       const float *want)
{
    struct nncc_shape shape;
    if (kh5_shape(f, path, &shape) != NNCC_OK) fail_msg("%s: %s", path, nncc_last_error());
    assert_int_equal(shape.rank, rank);
    for (int i = 0; i < rank; i++) assert_int_equal(shape.dim[i], dims[i]);
    float *v = malloc((size_t)(n ? n : 1) * sizeof *v);
    if (kh5_read_f32(f, path, v, n) != NNCC_OK) fail_msg("%s: %s", path, nncc_last_error());
    for (int64_t i = 0; i < n; i++)
        if (memcmp(&v[i], &want[i], sizeof(float)))
            fail_msg("%s[%lld] = %.9g, expected %.9g", path, (long long)i, v[i], want[i]);
    free(v);
}

/* ---- h5py's files: the forms Keras uses ---- */

static void test_string_attributes(void **state)
{
    (void)state;
    struct kh5 *f = open_case("forms.h5");
    assert_string_equal(kh5_label(f), "forms.h5");
    want_string(f, "/", "vlen_str", "{\"class_name\": \"Sequential\"}");
    want_string(f, "", "utf8_str", "caf\xc3\xa9 \xe2\x9c\x93");
    want_string(f, "/", "fixed_str", "2.15.0");
    want_string(f, "/", "bytes_str", "tensorflow");
    want_string(f, "/", "one_elem", "solo");
    want_string(f, "/", "repr_str", "['iter:0', 'dense/kernel/m:0']");
    want_string(f, "/", "empty_str", "");
    assert_true(kh5_has_attr(f, "/", "vlen_str"));
    assert_false(kh5_has_attr(f, "/", "nope"));
    assert_false(kh5_has_attr(f, "/no/such", "vlen_str"));
    /* Not strings. */
    assert_null(kh5_attr_string(f, "/", "number"));
    assert_error("forms.h5", "'number'", "not a string");
    assert_null(kh5_attr_string(f, "/", "vlen_list"));
    assert_error("forms.h5", "'vlen_list'", "not a string");
    assert_null(kh5_attr_string(f, "/", "missing"));
    assert_error("forms.h5", "no attribute 'missing'", NULL);
    assert_null(kh5_attr_string(f, "/model_weights/nope", "x"));
    assert_error("forms.h5", "no object '/model_weights/nope'", NULL);
    kh5_close(f);
}

static void test_string_lists(void **state)
{
    (void)state;
    struct kh5 *f = open_case("forms.h5");
    want_strings(f, "/", "vlen_list", 3, (const char *[]){"dense", "dense_1", "kernel:0"});
    want_strings(f, "/", "fixed_list", 3, (const char *[]){"a", "bb", "ccc"});
    want_strings(f, "/", "one_elem", 1, (const char *[]){"solo"});
    want_strings(f, "/", "empty_list", 0, NULL);
    want_strings(f, "model_weights/dense/dense", "weight_names", 2,
                   (const char *[]){"dense/kernel:0", "dense/bias:0"});
    char **s = (char **)&s;
    /* A scalar string is not a list (Keras 3's repr string: the caller
     * reads it with kh5_attr_string). */
    assert_int_equal(kh5_attr_strings(f, "/", "repr_str", &s), -1);
    assert_null(s);
    assert_error("forms.h5", "'repr_str'", "not a list of strings");
    assert_int_equal(kh5_attr_strings(f, "/", "numbers", &s), -1);
    assert_error("forms.h5", "'numbers'", "not a list of strings");
    assert_int_equal(kh5_attr_strings(f, "/", "number", &s), -1);
    kh5_close(f);
}

static void test_groups(void **state)
{
    (void)state;
    struct kh5 *f = open_case("forms.h5");
    assert_true(kh5_is_group(f, "/"));
    assert_true(kh5_is_group(f, "model_weights/dense"));
    assert_true(kh5_is_group(f, "/model_weights/dense/dense/"));
    assert_false(kh5_is_group(f, "model_weights/dense/dense/kernel:0"));
    assert_true(kh5_is_dataset(f, "model_weights/dense/dense/kernel:0"));
    assert_false(kh5_is_dataset(f, "model_weights/dense"));
    assert_false(kh5_is_group(f, "nope/nope"));
    /* Links Keras never writes are not followed. */
    assert_false(kh5_is_group(f, "soft"));
    assert_false(kh5_is_group(f, "external"));
    struct nncc_shape shape;
    assert_int_equal(kh5_shape(f, "soft/f32_r0", &shape), NNCC_ERR_FORMAT);
    assert_error("forms.h5", "'soft' is a soft link", NULL);
    assert_int_equal(kh5_shape(f, "external", &shape), NNCC_ERR_FORMAT);
    assert_error("forms.h5", "'external' is a external link", NULL);

    char **c = NULL;
    int n = kh5_children(f, "/", &c);
    assert_int_equal(n, 5);
    const char *want[] = {"data", "empty_group", "external", "model_weights", "soft"};
    for (int i = 0; i < n; i++) assert_string_equal(c[i], want[i]);
    kh5_strings_free(c, n);
    n = kh5_children(f, "model_weights/dense/dense", &c);
    assert_int_equal(n, 2);
    assert_string_equal(c[0], "bias:0");
    assert_string_equal(c[1], "kernel:0");
    kh5_strings_free(c, n);
    n = kh5_children(f, "empty_group", &c);
    assert_int_equal(n, 0);
    assert_non_null(c);
    kh5_strings_free(c, n);
    assert_int_equal(kh5_children(f, "data/f32_r0", &c), -1);
    assert_error("forms.h5", "'data/f32_r0' is not a group", NULL);
    assert_int_equal(kh5_children(f, "missing", &c), -1);
    assert_error("forms.h5", "no object 'missing'", NULL);
    kh5_close(f);
}

static void test_datasets(void **state)
{
    (void)state;
    struct kh5 *f = open_case("forms.h5");
    want_f32(f, "model_weights/dense/dense/kernel:0", 2, (int64_t[]){2, 3}, 6,
               (float[]){0, 0.25f, 0.5f, 0.75f, 1, 1.25f});
    want_f32(f, "model_weights/dense/dense/bias:0", 1, (int64_t[]){3}, 3,
               (float[]){-1, 0.5f, 2});
    want_f32(f, "data/f32_r0", 0, NULL, 1, (float[]){3.25f});
    want_f32(f, "data/f64_r1", 1, (int64_t[]){3}, 3, (float[]){0.1f, -2.5f, 1e10f});
    want_f32(f, "data/i64_r2", 2, (int64_t[]){2, 2}, 4, (float[]){1, -2, 3, 4});
    want_f32(f, "data/i32_r3", 3, (int64_t[]){2, 2, 2}, 8,
               (float[]){-4, -3, -2, -1, 0, 1, 2, 3});
    float u8[16];
    for (int i = 0; i < 16; i++) u8[i] = (float)(i * 16);
    want_f32(f, "data/u8_r4", 4, (int64_t[]){1, 2, 2, 4}, 16, u8);
    want_f32(f, "data/f16_r1", 1, (int64_t[]){3}, 3, (float[]){0.5f, -1, 65504});
    want_f32(f, "data/empty", 2, (int64_t[]){0, 3}, 0, NULL);
    float ch[100];
    for (int i = 0; i < 100; i++) ch[i] = (float)i;
    want_f32(f, "data/chunked", 1, (int64_t[]){100}, 100, ch);

    int64_t iv = 0;
    double dv = 0;
    assert_int_equal(kh5_read_i64(f, "data/i64_scalar", &iv), NNCC_OK);
    assert_true(iv == 1234567890123LL);
    assert_int_equal(kh5_read_i64(f, "data/f32_int", &iv), NNCC_OK);
    assert_true(iv == 42);
    assert_int_equal(kh5_read_i64(f, "data/f32_one", &iv), NNCC_OK);
    assert_true(iv == 7);
    assert_int_equal(kh5_read_i64(f, "data/f32_frac", &iv), NNCC_ERR_FORMAT);
    assert_error("forms.h5", "'data/f32_frac'", "not an integer");
    assert_int_equal(kh5_read_f64(f, "data/f64_scalar", &dv), NNCC_OK);
    assert_true(dv == 0.001);
    assert_int_equal(kh5_read_f64(f, "data/i64_scalar", &dv), NNCC_OK);
    assert_true(dv == 1234567890123.0);
    assert_int_equal(kh5_read_f64(f, "data/f64_r1", &dv), NNCC_ERR_FORMAT);
    assert_error("forms.h5", "'data/f64_r1'", "holds 3 values, not one");

    /* A wrong count, checked before anything is written to dst. */
    float small[2] = {9, 9};
    assert_int_equal(kh5_read_f32(f, "data/f64_r1", small, 2), NNCC_ERR_SHAPE);
    assert_error("forms.h5", "'data/f64_r1' holds 3 values, 2 were expected", NULL);
    assert_true(small[0] == 9 && small[1] == 9);
    kh5_close(f);
}

static void test_wrong_types(void **state)
{
    (void)state;
    struct kh5 *f = open_case("forms.h5");
    float v[4];
    static const struct {
        const char *path, *why;
    } bad[] = {
        {"data/string", "a string"},     {"data/strings", "a string"},
        {"data/compound", "a compound"}, {"data/bool", "an enum"},
        {"data/ref", "a reference"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_not_equal(kh5_read_f32(f, bad[i].path, v, 1), NNCC_OK);
        assert_error("forms.h5", bad[i].path, bad[i].why);
        int64_t iv;
        assert_int_not_equal(kh5_read_i64(f, bad[i].path, &iv), NNCC_OK);
        assert_error("forms.h5", bad[i].path, NULL);
    }
    struct nncc_shape shape;
    assert_int_equal(kh5_shape(f, "data/rank9", &shape), NNCC_ERR_FORMAT);
    assert_error("forms.h5", "'data/rank9'", "at most rank 8");
    assert_int_equal(kh5_shape(f, "model_weights", &shape), NNCC_ERR_FORMAT);
    assert_error("forms.h5", "'model_weights' is not a dataset", NULL);
    kh5_close(f);
}

/* ---- Hostile files ---- */

static void test_not_hdf5(void **state)
{
    (void)state;
    assert_null(kh5_open(CASES "not_hdf5.h5", "lbl.h5"));
    assert_error("'lbl.h5': not an HDF5 file", NULL, NULL);
    assert_null(kh5_open(CASES "truncated_super.h5", "ts.h5"));
    assert_error("ts.h5", NULL, NULL);
    assert_null(kh5_open(CASES "nope.h5", NULL));
    assert_error(CASES "nope.h5", "No such file", NULL);
    assert_null(kh5_open(CASES, "dir"));
    assert_error("'dir'", "directory", NULL);
    assert_null(kh5_open_image("garbage!", 8, "img"));
    assert_error("'img': not an HDF5 file", NULL, NULL);
    assert_null(kh5_open_image(NULL, 0, "img0"));
    assert_error("'img0': not an HDF5 file", NULL, NULL);
}

static void test_fifo(void **state)
{
    (void)state;
    char dir[] = "/tmp/kh5-fifo-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[600];
    snprintf(path, sizeof path, "%s/model.h5", dir);
    assert_int_equal(mkfifo(path, 0600), 0);
    assert_null(kh5_open(path, NULL)); /* no writer: must not block */
    assert_error(path, "FIFO", NULL);
    unlink(path);
    rmdir(dir);
    assert_null(kh5_open("/dev/zero", NULL));
    assert_error("/dev/zero", "character device", NULL);
}

static void test_truncated(void **state)
{
    (void)state;
    /* Cut in half: opening or reading fails, naming the file. */
    struct kh5 *f = kh5_open(CASES "truncated.h5", "truncated.h5");
    if (f) {
        float v[1000];
        assert_int_not_equal(kh5_read_f32(f, "w", v, 1000), NNCC_OK);
        kh5_close(f);
    }
    assert_error("truncated.h5", "(libhdf5: ", NULL);
    /* Every prefix of a real file, from memory: never a crash. */
    FILE *in = fopen(CASES "forms.h5", "rb");
    assert_non_null(in);
    static unsigned char buf[1 << 16];
    size_t size = fread(buf, 1, sizeof buf, in);
    fclose(in);
    for (size_t cut = 0; cut < size; cut += cut < 4096 ? 97 : 1999) {
        struct kh5 *g = kh5_open_image(buf, cut, "cut.h5");
        if (!g) {
            assert_error("cut.h5", NULL, NULL);
            continue;
        }
        char *s = kh5_attr_string(g, "/", "vlen_str");
        free(s);
        float v[6];
        kh5_read_f32(g, "model_weights/dense/dense/kernel:0", v, 6);
        kh5_close(g);
    }
}

static void test_huge(void **state)
{
    (void)state;
    struct kh5 *f = open_case("huge_declared.h5");
    struct nncc_shape shape;
    /* 2^32 elements: over KH5_MAX_ELEMENTS. */
    assert_int_equal(kh5_shape(f, "big", &shape), NNCC_ERR_FORMAT);
    assert_error("huge_declared.h5", "'big'", "more than 2147483648 elements");
    /* 2^30 float32 in chunks never written: 4 GiB declared, nothing stored. */
    assert_int_equal(kh5_shape(f, "big_chunked", &shape), NNCC_ERR_FORMAT);
    assert_error("huge_declared.h5", "'big_chunked' declares 4294967296 bytes", NULL);
    want_f32(f, "small", 1, (int64_t[]){4}, 4, (float[]){1, 1, 1, 1});
    kh5_close(f);

    /* Dimensions patched to 2^24 (libhdf5 refuses at open, or nncc does). */
    f = open_case("patched_dims.h5");
    assert_int_equal(kh5_shape(f, "x", &shape), NNCC_ERR_FORMAT);
    assert_error("patched_dims.h5", "'x'", NULL);
    kh5_close(f);
    /* ... and the stored size to 64 MiB: more than the file holds. */
    f = open_case("patched_size.h5");
    assert_int_equal(kh5_shape(f, "x", &shape), NNCC_ERR_FORMAT);
    assert_error("patched_size.h5", "'x'", NULL);
    kh5_close(f);
}

static void test_deep_and_long(void **state)
{
    (void)state;
    struct kh5 *f = open_case("deep.h5");
    char path[400] = "";
    for (int i = 0; i < 50; i++) strcat(path, i ? "/g" : "g");
    assert_true(kh5_is_group(f, path));
    strcat(path, "/x");
    want_f32(f, path, 0, NULL, 1, (float[]){1});
    char *s = kh5_attr_string(f, "/", "long");
    assert_non_null(s);
    assert_int_equal(strlen(s), 70000);
    free(s);
    char **l = NULL;
    assert_int_equal(kh5_attr_strings(f, "/", "many", &l), 300);
    assert_string_equal(l[299], "s");
    kh5_strings_free(l, 300);
    /* A path over the limit is refused before libhdf5 sees it. */
    size_t n = 10000;
    char *longp = malloc(n + 1);
    for (size_t i = 0; i < n; i++) longp[i] = i % 2 ? '/' : 'g';
    longp[n] = 0;
    assert_false(kh5_is_group(f, longp));
    struct nncc_shape shape;
    assert_int_equal(kh5_shape(f, longp, &shape), NNCC_ERR_FORMAT);
    assert_error("deep.h5", "object path of 10000 bytes", NULL);
    free(longp);
    kh5_close(f);
}

/* ---- Writing ---- */

static void test_write_round_trip(void **state)
{
    (void)state;
    struct kh5 *w = kh5_create("new.h5");
    assert_non_null(w);
    assert_int_equal(kh5_set_attr_string(w, "/", "keras_version", "2.15.0"), NNCC_OK);
    assert_int_equal(kh5_set_attr_string(w, "/", "backend", "tensorflow"), NNCC_OK);
    char *big = malloc(200001);
    for (int i = 0; i < 200000; i++) big[i] = (char)('a' + i % 26);
    big[200000] = 0;
    assert_int_equal(kh5_set_attr_string(w, "/", "model_config", big), NNCC_OK);
    assert_int_equal(kh5_set_attr_string(w, "/", "keras_version", "3.0"), NNCC_OK); /* replaced */
    assert_int_equal(kh5_group(w, "model_weights/dense/dense"), NNCC_OK);
    assert_int_equal(kh5_group(w, "model_weights/dense"), NNCC_OK); /* exists: fine */
    const char *names[] = {"dense", "caf\xc3\xa9"};
    assert_int_equal(kh5_set_attr_strings(w, "model_weights", "layer_names", names, 2), NNCC_OK);
    assert_int_equal(kh5_set_attr_strings(w, "model_weights", "empty", NULL, 0), NNCC_OK);
    const float k[6] = {1, -2, 3.5f, 1e-30f, -0.0f, 6};
    assert_int_equal(kh5_write_f32(w, "model_weights/dense/dense/kernel:0", NNCC_SHAPE(2, 3), k),
                     NNCC_OK);
    assert_int_equal(kh5_write_f32(w, "opt/x/scalar", (struct nncc_shape){.rank = 0}, k + 2),
                     NNCC_OK);
    assert_int_equal(kh5_write_f32(w, "opt/r4", NNCC_SHAPE(1, 1, 2, 3), k), NNCC_OK);
    assert_int_equal(kh5_write_i64(w, "opt/iterations", -123456789012LL), NNCC_OK);
    /* Errors: an existing dataset, a group over a dataset. */
    assert_int_equal(kh5_write_i64(w, "opt/iterations", 1), NNCC_ERR_ARG);
    assert_error("new.h5", "'opt/iterations' already exists", NULL);
    assert_int_equal(kh5_group(w, "opt/iterations"), NNCC_ERR_ARG);
    assert_error("new.h5", "not a group", NULL);

    /* Readable while open, and from its image. */
    want_string(w, "/", "keras_version", "3.0");
    void *img = NULL;
    size_t size = 0;
    assert_int_equal(kh5_image(w, &img, &size), NNCC_OK);
    assert_true(size > 0);
    const char *keep = getenv("KH5_KEEP_DIR");
    if (keep) {
        char p[512];
        snprintf(p, sizeof p, "%s/written.h5", keep);
        FILE *o = fopen(p, "wb");
        assert_non_null(o);
        fwrite(img, 1, size, o);
        fclose(o);
    }
    kh5_close(w);
    struct kh5 *r = kh5_open_image(img, size, "again.h5");
    if (!r) fail_msg("%s", nncc_last_error());
    free(img); /* the image is copied */
    assert_non_null(r);
    want_string(r, "/", "keras_version", "3.0");
    want_string(r, "/", "backend", "tensorflow");
    char *s = kh5_attr_string(r, "/", "model_config");
    assert_non_null(s);
    assert_string_equal(s, big);
    free(s);
    free(big);
    want_strings(r, "model_weights", "layer_names", 2, names);
    want_strings(r, "model_weights", "empty", 0, NULL);
    want_f32(r, "model_weights/dense/dense/kernel:0", 2, (int64_t[]){2, 3}, 6, k);
    want_f32(r, "opt/x/scalar", 0, NULL, 1, k + 2);
    want_f32(r, "opt/r4", 4, (int64_t[]){1, 1, 2, 3}, 6, k);
    int64_t iv = 0;
    assert_int_equal(kh5_read_i64(r, "opt/iterations", &iv), NNCC_OK);
    assert_true(iv == -123456789012LL);
    char **c = NULL;
    int n = kh5_children(r, "/", &c);
    assert_int_equal(n, 2);
    assert_string_equal(c[0], "model_weights");
    assert_string_equal(c[1], "opt");
    kh5_strings_free(c, n);
    /* Read-only: writing is refused, and so is kh5_image. */
    assert_int_equal(kh5_group(r, "x"), NNCC_ERR_ARG);
    assert_error("again.h5", "read-only", NULL);
    void *img2;
    assert_int_equal(kh5_image(r, &img2, &size), NNCC_ERR_ARG);
    kh5_close(r);
}

/* Two files in memory at once, and an image reopened twice at once. */
static void test_many_open(void **state)
{
    (void)state;
    struct kh5 *a = kh5_create("a.h5"), *b = kh5_create("b.h5");
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(kh5_write_i64(a, "v", 1), NNCC_OK);
    assert_int_equal(kh5_write_i64(b, "v", 2), NNCC_OK);
    void *img;
    size_t size;
    assert_int_equal(kh5_image(a, &img, &size), NNCC_OK);
    struct kh5 *r1 = kh5_open_image(img, size, "r1"), *r2 = kh5_open_image(img, size, "r2");
    assert_non_null(r1);
    assert_non_null(r2);
    int64_t v = 0;
    assert_int_equal(kh5_read_i64(r2, "v", &v), NNCC_OK);
    assert_true(v == 1);
    assert_int_equal(kh5_read_i64(b, "v", &v), NNCC_OK);
    assert_true(v == 2);
    kh5_close(r1);
    kh5_close(r2);
    kh5_close(a);
    kh5_close(b);
    free(img);
}

/* A list of strings over the 64 KiB object header limit is a clean error
 * (keras_h5.h); one under it is fine. */
static void test_list_limit(void **state)
{
    (void)state;
    static const char *v[5000];
    for (int i = 0; i < 5000; i++) v[i] = i % 2 ? "dense_1/kernel:0" : "x";
    struct kh5 *f = kh5_create("limit.h5");
    assert_int_equal(kh5_set_attr_strings(f, "/", "names", v, 4000), NNCC_OK);
    assert_int_equal(kh5_set_attr_strings(f, "/", "names", v, 5000), NNCC_ERR_IO);
    assert_error("limit.h5", "attribute 'names'", "object header message is too large");
    char **s = NULL;
    assert_int_equal(kh5_attr_strings(f, "/", "names", &s), -1); /* replaced, then refused */
    kh5_close(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_string_attributes), cmocka_unit_test(test_string_lists),
        cmocka_unit_test(test_groups),            cmocka_unit_test(test_datasets),
        cmocka_unit_test(test_wrong_types),       cmocka_unit_test(test_not_hdf5),
        cmocka_unit_test(test_fifo),              cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_huge),              cmocka_unit_test(test_deep_and_long),
        cmocka_unit_test(test_write_round_trip),  cmocka_unit_test(test_many_open),
        cmocka_unit_test(test_list_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
