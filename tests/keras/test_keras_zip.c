/*
 * test_keras_zip.c — the zip archives of .keras files (runtime/io/keras_zip.c).
 *
 * - Round trips: kzip_write then kzip_read, members of 0 bytes to a few MB,
 *   in order; the same members give the same bytes (fixed dates); a file
 *   written over keeps working; optional members that are missing.
 * - Archives written by Python's zipfile (tests/keras/zipcases/, made by
 *   make_zip_cases.py): deflated and stored members read exactly; hostile
 *   ones (path traversal, absolute names, backslashes, a NUL in a name,
 *   duplicates, a declared size larger than the data, truncated, corrupt
 *   data, bzip2, encrypted, not a zip, a FIFO) are errors whose messages
 *   name the archive and, where there is one, the member.
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
#include "runtime/io/keras_zip.h"

#define CASES NNCC_SOURCE_DIR "/tests/keras/zipcases/"

static const char CONFIG[] = "{\"class_name\": \"Sequential\", \"config\": {}}";

static void assert_error(const char *a, const char *b, const char *c)
{
    const char *msg = nncc_last_error();
    assert_true(nncc_last_status() != NNCC_OK);
    const char *want[3] = {a, b, c};
    for (int i = 0; i < 3; i++)
        if (want[i] && !strstr(msg, want[i]))
            fail_msg("error \"%s\" does not contain \"%s\"", msg, want[i]);
}

static char tmpdir[64];

static int setup(void **state)
{
    (void)state;
    strcpy(tmpdir, "/tmp/kzip-test-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd);
}

static void test_python_archive(void **state)
{
    (void)state;
    struct kzip_member m[] = {
        {.name = "config.json"},
        {.name = "model.weights.h5"},
        {.name = "metadata.json"},
        {.name = "assets/none", .optional = true},
    };
    assert_int_equal(kzip_read(CASES "model.keras", m, 4), NNCC_OK);
    assert_int_equal(m[0].size, strlen(CONFIG));
    assert_string_equal(m[0].data, CONFIG);
    assert_int_equal(m[1].size, 2048);
    for (int i = 0; i < 2048; i++) assert_int_equal(((unsigned char *)m[1].data)[i], i % 256);
    assert_int_equal(((char *)m[1].data)[2048], 0); /* NUL after */
    assert_non_null(strstr(m[2].data, "\"keras_version\": \"3.3.3\""));
    assert_null(m[3].data);
    assert_int_equal(m[3].size, 0);
    kzip_members_free(m, 4);
    assert_null(m[0].data);

    struct kzip_member s[] = {{.name = "config.json"}, {.name = "empty"}};
    assert_int_equal(kzip_read(CASES "stored.keras", s, 2), NNCC_OK);
    assert_string_equal(s[0].data, CONFIG);
    assert_int_equal(s[1].size, 0);
    assert_non_null(s[1].data);
    assert_string_equal(s[1].data, "");
    kzip_members_free(s, 2);
}

static void test_missing_member(void **state)
{
    (void)state;
    struct kzip_member m[] = {{.name = "config.json"}, {.name = "model.weights.h5x"}};
    assert_int_equal(kzip_read(CASES "model.keras", m, 2), NNCC_ERR_FORMAT);
    assert_error("model.keras", "no member 'model.weights.h5x'", NULL);
    assert_null(m[0].data); /* freed on failure */
}

/* Archive, the member named in the error, what the error says. */
static const struct {
    const char *file, *member, *why;
} hostile[] = {
    {"traversal.keras", "'../evil.json'", "'..' component"},
    {"deep_traversal.keras", "'a/../../evil'", "'..' component"},
    {"absolute.keras", "'/etc/evil'", "absolute path"},
    {"backslash.keras", "'a\\evil'", "backslash"},
    {"duplicate.keras", "'config.json'", "listed twice"},
    {"big_size.keras", "'config.json'", "declares 4000 bytes from 42 compressed bytes"},
    {"short_deflate.keras", "'config.json'", NULL},
    {"corrupt.keras", "'model.weights.h5'", NULL},
    {"bzip2.keras", "'config.json'", "compression method 12"},
    {"encrypted.keras", "'config.json'", "encrypted"},
    {"truncated.keras", NULL, "not a readable zip archive"},
    {"not_zip.keras", NULL, "not a readable zip archive"},
};

static void test_hostile(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof hostile / sizeof hostile[0]; i++) {
        char path[512];
        snprintf(path, sizeof path, CASES "%s", hostile[i].file);
        struct kzip_member m[] = {{.name = "config.json"}, {.name = "model.weights.h5", .optional = true}};
        nncc_clear_error();
        if (kzip_read(path, m, 2) == NNCC_OK)
            fail_msg("%s: read without error", hostile[i].file);
        assert_null(m[0].data);
        assert_null(m[1].data);
        assert_error(path, hostile[i].member, hostile[i].why);
    }
}

static void test_nul_name(void **state)
{
    (void)state;
    /* libzip cuts the name at its NUL: "evil" is then just a name. */
    struct kzip_member m[] = {{.name = "config.json"}};
    enum nncc_status st = kzip_read(CASES "nul_name.keras", m, 1);
    if (st == NNCC_OK) {
        assert_string_equal(m[0].data, CONFIG);
        kzip_members_free(m, 1);
    } else {
        assert_error(CASES "nul_name.keras", NULL, NULL);
    }
}

static void test_not_regular(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "%s/fifo.keras", tmpdir);
    assert_int_equal(mkfifo(path, 0600), 0);
    struct kzip_member m[] = {{.name = "config.json"}};
    assert_int_equal(kzip_read(path, m, 1), NNCC_ERR_IO); /* never blocks */
    assert_error(path, "FIFO", NULL);
    assert_int_equal(kzip_read("/dev/zero", m, 1), NNCC_ERR_IO);
    assert_error("/dev/zero", "character device", NULL);
    assert_int_equal(kzip_read(CASES "nope.keras", m, 1), NNCC_ERR_IO);
    assert_error(CASES "nope.keras", "No such file", NULL);
}

static void test_round_trip(void **state)
{
    (void)state;
    size_t big = 3u << 20;
    unsigned char *data = malloc(big);
    for (size_t i = 0; i < big; i++) data[i] = (unsigned char)((i * 7919) >> 5);
    struct kzip_member w[] = {
        {.name = "metadata.json", .data = "{}", .size = 2},
        {.name = "config.json", .data = (void *)CONFIG, .size = strlen(CONFIG)},
        {.name = "model.weights.h5", .data = data, .size = big},
        {.name = "assets/empty", .data = NULL, .size = 0},
    };
    char path[128], path2[128];
    snprintf(path, sizeof path, "%s/m.keras", tmpdir);
    snprintf(path2, sizeof path2, "%s/m2.keras", tmpdir);
    assert_int_equal(kzip_write(path, "save", w, 4), NNCC_OK);
    assert_int_equal(kzip_write(path, "save", w, 4), NNCC_OK); /* over itself */
    assert_int_equal(kzip_write(path2, "save", w, 4), NNCC_OK);
    /* Same members, same bytes. */
    FILE *a = fopen(path, "rb"), *b = fopen(path2, "rb");
    assert_non_null(a);
    assert_non_null(b);
    int ca, cb;
    long n = 0;
    do {
        ca = fgetc(a);
        cb = fgetc(b);
        assert_int_equal(ca, cb);
        n++;
    } while (ca != EOF);
    fclose(a);
    fclose(b);
    assert_true(n < (long)big); /* deflated */

    struct kzip_member r[] = {
        {.name = "model.weights.h5"}, {.name = "config.json"}, {.name = "assets/empty"},
        {.name = "metadata.json"},    {.name = "nope", .optional = true},
    };
    assert_int_equal(kzip_read(path, r, 5), NNCC_OK);
    assert_int_equal(r[0].size, big);
    assert_memory_equal(r[0].data, data, big);
    assert_string_equal(r[1].data, CONFIG);
    assert_int_equal(r[2].size, 0);
    assert_string_equal(r[3].data, "{}");
    assert_null(r[4].data);
    kzip_members_free(r, 5);
    free(data);

    /* Bad names and duplicates are refused on write, naming the member. */
    struct kzip_member bad[] = {{.name = "x", .data = "1", .size = 1},
                                {.name = "../x", .data = "1", .size = 1}};
    assert_int_equal(kzip_write(path, "save", bad, 2), NNCC_ERR_ARG);
    assert_error("save", path, "'../x'");
    bad[1].name = "x";
    assert_int_equal(kzip_write(path, "save", bad, 2), NNCC_ERR_ARG);
    assert_error("save", path, "'x'");
    /* The file from before is intact. */
    struct kzip_member c[] = {{.name = "config.json"}};
    assert_int_equal(kzip_read(path, c, 1), NNCC_OK);
    kzip_members_free(c, 1);
    /* An empty archive. */
    if (kzip_write(path2, "save", NULL, 0) != NNCC_OK) fail_msg("%s", nncc_last_error());
    struct kzip_member o[] = {{.name = "config.json", .optional = true}};
    assert_int_equal(kzip_read(path2, o, 1), NNCC_OK);
    assert_null(o[0].data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_python_archive),
        cmocka_unit_test(test_missing_member),
        cmocka_unit_test(test_hostile),
        cmocka_unit_test(test_nul_name),
        cmocka_unit_test_setup_teardown(test_not_regular, setup, teardown),
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
