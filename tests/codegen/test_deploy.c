/*
 * test_deploy.c — the standalone deployment program's readers
 * (codegen/aot/deploy_read.c with formats.c and deploy_inflate.c, compiled
 * into this test directly as the program compiles them).  Their inflate is
 * held to zlib's answers in test_inflate.c.
 *
 * Differential: every .npy and IDX file of the fuzz seed corpus is read by
 * nna_decode and by the library's loaders (nncc_load_npy,
 * nncc_load_idx_file), which must agree on success, on every value and, for
 * a plain file refused, on the message: both parse with
 * codegen/aot/formats.c; and nna_read, fed the same bytes in chunks of 1,
 * 4 and 7 bytes with the size known or not, gives the same answer.  Plus
 * shapes: nna_match_rows.
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

#include "include/nncc.h"
#include "codegen/aot/deploy.h"
#include "runtime/jit/jit.h"
#include "tests/codegen/read_chunks.h"

#define CORPUS NNCC_SOURCE_DIR "/tests/fuzz/corpus/"

/* Reads every corpus file of one kind with both readers. */
static void compare_corpus(const char *kind, bool npy)
{
    char dir_path[600];
    snprintf(dir_path, sizeof dir_path, CORPUS "%s", kind);
    DIR *d = opendir(dir_path);
    assert_non_null(d);
    struct dirent *e;
    int files = 0, agreed_ok = 0, refused_alike = 0;
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
        char err[1024];
        int rc = nna_decode(exact, len, npy ? NNA_NPY : NNA_IDX, 1, &a, err, sizeof err);
        struct nncc_array *lib = npy ? nncc_load_npy(path) : nncc_load_idx_file(path);
        files++;
        /* Streamed in small chunks (elements and headers split), with the
         * size known (a file) or not (a pipe): the same answer. */
        for (size_t step = 1; step <= 7; step += 3)
            for (int known = 0; known < 2; known++)
                if (!same_in_chunks(exact, len, npy ? NNA_NPY : NNA_IDX, 1, step, known, rc == 0,
                                    &a))
                    fail_msg("%s: read in chunks of %zu (size %s), the answer differs", path,
                             step, known ? "known" : "unknown");
        if ((rc == 0) != (lib != NULL))
            fail_msg("%s: the deployment reader %s (%s) but the library %s (%s)", path,
                     rc ? "fails" : "succeeds", rc ? err : "", lib ? "succeeds" : "fails",
                     lib ? "" : nncc_last_error());
        /* One parser (codegen/aot/formats.c): a plain file's refusal reads the
         * same after each side's prefix ("npy: " / ".npy file 'PATH': "). */
        bool gz = len >= 2 && exact[0] == 0x1f && exact[1] == 0x8b;
        if (!lib && !gz) {
            char lib_prefix[1000];
            snprintf(lib_prefix, sizeof lib_prefix, "%s '%s': ", npy ? ".npy file" : "IDX file",
                     path);
            const char *ours = err + strlen(npy ? "npy: " : "IDX: ");
            assert_int_equal(strncmp(nncc_last_error(), lib_prefix, strlen(lib_prefix)), 0);
            assert_string_equal(nncc_last_error() + strlen(lib_prefix), ours);
            refused_alike++;
        }
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
    printf("    %s: %d files, %d read by both, the rest refused by both (%d plain ones with the "
           "same message)\n", kind, files, agreed_ok, refused_alike);
    assert_true(files > 5 && agreed_ok > 2 && refused_alike > 2);
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
        cmocka_unit_test(test_npy_corpus),
        cmocka_unit_test(test_idx_corpus),
        cmocka_unit_test(test_match_rows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
