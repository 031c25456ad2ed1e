/*
 * test_deploy.c — the standalone deployment program's readers
 * (codegen/aot/deploy_inflate.c and deploy_read.c, compiled into this test
 * directly: they are not part of libnncc).
 *
 * Differential: zlib compresses random and repetitive buffers at every
 * level and strategy, as gzip and as multi-member gzip, and nna_gunzip must
 * give the bytes back; every prefix of a gzip stream must fail cleanly (the
 * sanitizer build catches any read past the input).  Every .npy and IDX
 * file of the fuzz seed corpus is read by nna_decode and by the library's
 * loaders (nncc_load_npy, nncc_load_idx_file), which must agree on success
 * and on every value.  Plus shapes: nna_match_rows.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "include/nncc.h"
#include "codegen/aot/deploy.h"
#include "runtime/jit/jit.h"

#define CORPUS NNCC_SOURCE_DIR "/tests/fuzz/corpus/"

/* zlib's gzip of buf at a level and strategy. */
static unsigned char *gzip(const unsigned char *buf, size_t len, int level, int strategy,
                           size_t *out_len)
{
    z_stream z = {0};
    assert_int_equal(deflateInit2(&z, level, Z_DEFLATED, 31, 8, strategy), Z_OK);
    size_t cap = deflateBound(&z, (uLong)len) + 64;
    unsigned char *out = malloc(cap);
    assert_non_null(out);
    z.next_in = (unsigned char *)buf;
    z.avail_in = (uInt)len;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
    *out_len = z.total_out;
    deflateEnd(&z);
    return out;
}

static void test_gunzip_matches_zlib(void **state)
{
    (void)state;
    static const size_t sizes[] = {0, 1, 2, 100, 4096, 70000, 300001};
    static const int strategies[] = {Z_DEFAULT_STRATEGY, Z_FILTERED, Z_HUFFMAN_ONLY, Z_RLE,
                                     Z_FIXED};
    uint64_t z = 99;
    for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
        size_t len = sizes[si];
        unsigned char *buf = malloc(len + 1);
        for (size_t i = 0; i < len; i++) { /* runs, text-like bytes and noise */
            z = z * 6364136223846793005ull + 1442695040888963407ull;
            buf[i] = i % 1000 < 300 ? (unsigned char)(i / 97) : i % 1000 < 700
                         ? (unsigned char)("the quick brown fox "[i % 20])
                         : (unsigned char)(z >> 56);
        }
        for (int level = 0; level <= 9; level += 3)
            for (size_t st = 0; st < sizeof strategies / sizeof *strategies; st++) {
                size_t gz_len;
                unsigned char *gz = gzip(buf, len, level, strategies[st], &gz_len);
                unsigned char *out;
                size_t out_len;
                char err[200];
                int rc = nna_gunzip(gz, gz_len, (size_t)1 << 30, &out, &out_len, err, sizeof err);
                if (rc)
                    fail_msg("size %zu level %d strategy %d: %s", len, level, strategies[st], err);
                assert_int_equal(out_len, len);
                assert_true(len == 0 || memcmp(out, buf, len) == 0);
                free(out);
                free(gz);
            }
        free(buf);
    }
}

static void test_gunzip_members_and_prefixes(void **state)
{
    (void)state;
    unsigned char buf[5000];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (unsigned char)(i * i % 251);
    size_t a_len, b_len;
    unsigned char *a = gzip(buf, 3000, 6, Z_DEFAULT_STRATEGY, &a_len);
    unsigned char *b = gzip(buf + 3000, 2000, 1, Z_DEFAULT_STRATEGY, &b_len);
    unsigned char *two = malloc(a_len + b_len + 3);
    memcpy(two, a, a_len);
    memcpy(two + a_len, b, b_len);
    memcpy(two + a_len + b_len, "xyz", 3); /* trailing non-gzip bytes are ignored */
    unsigned char *out;
    size_t out_len;
    char err[200];
    assert_int_equal(nna_gunzip(two, a_len + b_len + 3, 1 << 20, &out, &out_len, err, sizeof err),
                     0);
    assert_int_equal(out_len, sizeof buf);
    assert_memory_equal(out, buf, sizeof buf);
    free(out);
    /* every proper prefix of a member fails, and nothing leaks */
    for (size_t cut = 0; cut < a_len; cut++) {
        unsigned char *copy = malloc(cut + 1); /* exactly cut bytes: ASan sees overreads */
        memcpy(copy, a, cut);
        assert_int_equal(nna_gunzip(copy, cut, 1 << 20, &out, &out_len, err, sizeof err), -1);
        assert_null(out);
        free(copy);
    }
    /* the output limit holds */
    assert_int_equal(nna_gunzip(a, a_len, 100, &out, &out_len, err, sizeof err), -1);
    assert_non_null(strstr(err, "limit"));
    free(a);
    free(b);
    free(two);
}

/* Reads every corpus file of one kind with both readers. */
static void compare_corpus(const char *kind, bool npy)
{
    char dir_path[600];
    snprintf(dir_path, sizeof dir_path, CORPUS "%s", kind);
    DIR *d = opendir(dir_path);
    assert_non_null(d);
    struct dirent *e;
    int files = 0, agreed_ok = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[900];
        snprintf(path, sizeof path, "%s/%s", dir_path, e->d_name);
        size_t len;
        char *bytes = nncc_read_file(path, &len);
        assert_non_null(bytes);
        unsigned char *exact = malloc(len + 1); /* no slack after the bytes */
        memcpy(exact, bytes, len);
        free(bytes);
        struct nna_array a;
        char err[400];
        int rc = nna_decode(exact, len, npy ? NNA_NPY : NNA_IDX, 1, &a, err, sizeof err);
        struct nncc_array *lib = npy ? nncc_load_npy(path) : nncc_load_idx_file(path);
        files++;
        if ((rc == 0) != (lib != NULL))
            fail_msg("%s: the deployment reader %s (%s) but the library %s (%s)", path,
                     rc ? "fails" : "succeeds", rc ? err : "", lib ? "succeeds" : "fails",
                     lib ? "" : nncc_last_error());
        if (lib) {
            assert_int_equal((int64_t)a.count, nncc_array_size(lib));
            for (uint64_t i = 0; i < a.count; i++)
                if (memcmp(&a.data[i], &lib->data[i], sizeof(float)) != 0 &&
                    !(a.data[i] != a.data[i] && lib->data[i] != lib->data[i]))
                    fail_msg("%s: value %llu: %g vs the library's %g", path,
                             (unsigned long long)i, (double)a.data[i], (double)lib->data[i]);
            agreed_ok++;
            nna_array_free(&a);
        }
        nncc_array_free(lib);
        free(exact);
    }
    closedir(d);
    printf("    %s: %d files, %d read by both, the rest refused by both\n", kind, files,
           agreed_ok);
    assert_true(files > 5 && agreed_ok > 2);
}

static void test_npy_corpus(void **state)
{
    (void)state;
    compare_corpus("npy", true);
}

static void test_idx_corpus(void **state)
{
    (void)state;
    compare_corpus("idx", false);
}

static void test_match_rows(void **state)
{
    (void)state;
    char err[300];
    const long img[] = {28, 28, 1}, vec[] = {10};
    struct nna_array a = {.rank = 3, .dims = {5, 28, 28}};
    assert_int_equal(nna_match_rows(&a, 3, img, err, sizeof err), 5); /* IDX images */
    a = (struct nna_array){.rank = 4, .dims = {5, 28, 28, 1}};
    assert_int_equal(nna_match_rows(&a, 3, img, err, sizeof err), 5);
    a = (struct nna_array){.rank = 2, .dims = {7, 784}};
    assert_int_equal(nna_match_rows(&a, 3, img, err, sizeof err), 7); /* flattened */
    a = (struct nna_array){.rank = 2, .dims = {28, 28}};
    assert_int_equal(nna_match_rows(&a, 3, img, err, sizeof err), 1); /* one sample */
    a = (struct nna_array){.rank = 1, .dims = {10}};
    assert_int_equal(nna_match_rows(&a, 1, vec, err, sizeof err), 1);
    a = (struct nna_array){.rank = 3, .dims = {5, 28, 27}};
    assert_int_equal(nna_match_rows(&a, 3, img, err, sizeof err), 0);
    assert_non_null(strstr(err, "wrong shape: the input is (5, 28, 27) but the model takes "
                                "(n, 28, 28, 1)"));
    a = (struct nna_array){.rank = 2, .dims = {0, 10}};
    assert_int_equal(nna_match_rows(&a, 1, vec, err, sizeof err), 0);
    assert_non_null(strstr(err, "no samples"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gunzip_matches_zlib),
        cmocka_unit_test(test_gunzip_members_and_prefixes),
        cmocka_unit_test(test_npy_corpus),
        cmocka_unit_test(test_idx_corpus),
        cmocka_unit_test(test_match_rows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
