/*
 * test_jit.c — the JIT toolchain (runtime/jit/jit.c) and SHA-256 (ir/sha256.c),
 * its cache's checks (damaged entries rebuilt, stale temporary files removed,
 * a private folder), also through nncc_predict.
 *
 * Every test that touches the cache gets a fresh, empty $XDG_CACHE_HOME made
 * with mkdtemp() and removed afterwards, so tests neither see each other's
 * objects nor the user's real cache.  The real compiler is used ($NNCC_CC if
 * set, else clang or cc), which keeps the whole file at about a second.
 * nncc_jit_compile_file is tested on files written into that folder.
 */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L /* mkdtemp, setenv, fork, utimensat */
#endif

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runtime/jit/jit.h"
#include "ir/sha256.h"

/* ---- Fixture: a private cache folder ----------------------------------- */

struct fixture {
    char dir[512];        /* the temporary $XDG_CACHE_HOME */
    struct nncc_jit jit;  /* initialised against it */
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
                char child[1024];
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
    snprintf(fx->dir, sizeof fx->dir, "%s/nncc-test-jit-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(fx->dir) || setenv("XDG_CACHE_HOME", fx->dir, 1) != 0) {
        free(fx);
        return -1;
    }
    if (nncc_jit_init(&fx->jit) != NNCC_OK) {
        fprintf(stderr, "nncc_jit_init: %s\n", nncc_last_error());
        rm_rf(fx->dir);
        free(fx);
        return -1;
    }
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

/* Entries of the cache folder whose name contains `part`. */
static int count_entries(const char *dir, const char *part)
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) n += strstr(e->d_name, part) != NULL;
    closedir(d);
    return n;
}

/* Looks up `int name(void)` and calls it (memcpy: ISO C has no cast from
 * object to function pointer). */
static int call_int_fn(void *handle, const char *name, const char *so_path)
{
    void *sym = nncc_jit_symbol(handle, name, so_path);
    assert_non_null(sym);
    int (*fn)(void);
    memcpy(&fn, &sym, sizeof fn);
    return fn();
}

static const char answer_src[] = "int answer(void) { return 42; }\n";

/* ---- SHA-256 ----------------------------------------------------------- */

static void test_sha256_vectors(void **state)
{
    (void)state;
    char hex[NNCC_SHA256_HEX_SIZE];
    nncc_sha256_str("", 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    nncc_sha256_str("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    /* 56 bytes: the padding needs a second block. */
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    nncc_sha256_str(two, strlen(two), hex);
    assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");

    /* One million 'a' fed in odd-sized pieces exercises the partial-block path. */
    char chunk[997];
    memset(chunk, 'a', sizeof chunk);
    struct nncc_sha256 s;
    unsigned char digest[NNCC_SHA256_SIZE];
    nncc_sha256_init(&s);
    size_t left = 1000000;
    while (left > 0) {
        size_t n = left < sizeof chunk ? left : sizeof chunk;
        nncc_sha256_update(&s, chunk, n);
        left -= n;
    }
    nncc_sha256_final(&s, digest);
    nncc_sha256_hex(digest, hex);
    assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

/* ---- Compile, load, cache ---------------------------------------------- */

static void test_compile_load_and_cache_hit(void **state)
{
    struct fixture *fx = *state;
    struct nncc_jit_result res;
    assert_int_equal(nncc_jit_compile(&fx->jit, answer_src, strlen(answer_src), "-O1", &res),
                     NNCC_OK);
    assert_false(res.cache_hit);
    assert_true(res.compile_s > 0);
    assert_non_null(strstr(res.so_path, fx->jit.cache_dir));
    free(res.diagnostics);

    void *h = nncc_jit_load(res.so_path);
    assert_non_null(h);
    assert_int_equal(call_int_fn(h, "answer", res.so_path), 42);
    nncc_jit_unload(h);

    /* Same source and flags: no compiler run, same object. */
    struct nncc_jit_result again;
    assert_int_equal(nncc_jit_compile(&fx->jit, answer_src, strlen(answer_src), "-O1", &again),
                     NNCC_OK);
    assert_true(again.cache_hit);
    assert_true(again.compile_s == 0.0);
    assert_null(again.diagnostics);
    assert_string_equal(again.so_path, res.so_path);

    /* Other flags: another key. */
    struct nncc_jit_result other;
    assert_int_equal(nncc_jit_compile(&fx->jit, answer_src, strlen(answer_src), " -O0  ", &other),
                     NNCC_OK);
    assert_false(other.cache_hit);
    assert_string_not_equal(other.so_path, res.so_path);
    free(other.diagnostics);

    /* The source is kept next to its object, byte for byte, followed by
     * the key the object is stored under (its fingerprint). */
    char c_path[1300], want[1000];
    size_t n = strlen(res.so_path);
    snprintf(c_path, sizeof c_path, "%.*s.c", (int)(n - 3), res.so_path);
    const char *base = strrchr(res.so_path, '/') + 1;
    snprintf(want, sizeof want,
             "%s\n/* nncc: the JIT cache key, checked when the object is loaded */\n"
             "extern const char nncc_cache_key[];\n"
             "__attribute__((visibility(\"default\"), used)) const char nncc_cache_key[] = "
             "\"%.64s\";\n",
             answer_src, base);
    size_t len;
    char *text = nncc_read_file(c_path, &len);
    assert_non_null(text);
    assert_string_equal(text, want);
    free(text);
    void *again_h = nncc_jit_load(res.so_path);
    assert_non_null(again_h);
    const char *key = nncc_jit_symbol(again_h, "nncc_cache_key", res.so_path);
    assert_non_null(key);
    assert_int_equal(strlen(key), 64);
    assert_memory_equal(key, base, 64);
    nncc_jit_unload(again_h);

    /* The hash file beside it holds the object's SHA-256. */
    char hash_path[1400], hex[NNCC_SHA256_HEX_SIZE + 1];
    snprintf(hash_path, sizeof hash_path, "%s.sha256", res.so_path);
    char *obj = nncc_read_file(res.so_path, &len);
    assert_non_null(obj);
    nncc_sha256_str(obj, len, hex);
    free(obj);
    strcat(hex, "\n");
    text = nncc_read_file(hash_path, &len);
    assert_non_null(text);
    assert_string_equal(text, hex);
    free(text);

    assert_int_equal(count_entries(fx->jit.cache_dir, ".tmp."), 0);
}

static void test_syntax_error(void **state)
{
    struct fixture *fx = *state;
    static const char bad[] = "int broken(void) { return 42 }\n";
    struct nncc_jit_result res;
    assert_int_equal(nncc_jit_compile(&fx->jit, bad, strlen(bad), NULL, &res), NNCC_ERR_COMPILE);
    assert_non_null(res.diagnostics);
    assert_non_null(strstr(res.diagnostics, "error"));
    assert_string_equal(res.so_path, "");
    assert_int_equal(nncc_last_status(), NNCC_ERR_COMPILE);
    assert_non_null(strstr(nncc_last_error(), "C compiler '"));
    assert_non_null(strstr(nncc_last_error(), "failed (exit "));
    assert_non_null(strstr(nncc_last_error(), "error"));
    free(res.diagnostics);

    /* No object, final or temporary, is left behind. */
    assert_int_equal(count_entries(fx->jit.cache_dir, ".so"), 0);
}

static void test_missing_symbol(void **state)
{
    struct fixture *fx = *state;
    struct nncc_jit_result res;
    assert_int_equal(nncc_jit_compile(&fx->jit, answer_src, strlen(answer_src), NULL, &res),
                     NNCC_OK);
    free(res.diagnostics);
    void *h = nncc_jit_load(res.so_path);
    assert_non_null(h);
    assert_null(nncc_jit_symbol(h, "model", res.so_path));
    assert_int_equal(nncc_last_status(), NNCC_ERR_COMPILE);
    char want[1400];
    snprintf(want, sizeof want, "symbol 'model' not found in '%s'", res.so_path);
    assert_string_equal(nncc_last_error(), want);
    nncc_jit_unload(h);

    assert_null(nncc_jit_load("/nonexistent/nncc-test.so"));
    assert_non_null(strstr(nncc_last_error(), "cannot load '/nonexistent/nncc-test.so'"));
}

/* Writes `text` to fx->dir/name; the path goes to `path`. */
static void write_in(const struct fixture *fx, const char *name, const char *text, char *path,
                     size_t size)
{
    snprintf(path, size, "%s/%s", fx->dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

/* A file compiled as written: its warnings name its own line and come back
 * on a cache hit; a change in a header it includes gives another key. */
static void test_compile_file(void **state)
{
    struct fixture *fx = *state;
    char header[1100], file[1100], inc[1200];
    write_in(fx, "value.h", "#define VALUE 7\n", header, sizeof header);
    write_in(fx, "value.c",
             "#include <value.h>\n"
             "int value(void) { int unused; return VALUE; }\n",
             file, sizeof file);
    snprintf(inc, sizeof inc, "-I%s", fx->dir);
    const char *args[] = {inc};
    char want[1200];
    snprintf(want, sizeof want, "%s:2:23: warning: unused variable", file);

    struct nncc_jit_result res, again, changed;
    assert_int_equal(nncc_jit_compile_file(&fx->jit, file, args, 1, "-O0 -Wall", NULL, false, &res),
                     NNCC_OK);
    assert_false(res.cache_hit);
    assert_non_null(res.diagnostics);
    assert_non_null(strstr(res.diagnostics, want));
    void *h = nncc_jit_load(res.so_path);
    assert_non_null(h);
    assert_int_equal(call_int_fn(h, "value", res.so_path), 7);
    nncc_jit_unload(h);
    assert_int_equal(count_entries(fx->jit.cache_dir, ".c"), 0); /* compiled where it is */

    assert_int_equal(
        nncc_jit_compile_file(&fx->jit, file, args, 1, "-O0 -Wall", NULL, false, &again), NNCC_OK);
    assert_true(again.cache_hit);
    assert_string_equal(again.so_path, res.so_path);
    assert_non_null(again.diagnostics);
    assert_string_equal(again.diagnostics, res.diagnostics);

    write_in(fx, "value.h", "#define VALUE 9\n", header, sizeof header);
    assert_int_equal(
        nncc_jit_compile_file(&fx->jit, file, args, 1, "-O0 -Wall", NULL, false, &changed),
        NNCC_OK);
    assert_false(changed.cache_hit);
    assert_string_not_equal(changed.so_path, res.so_path);
    h = nncc_jit_load(changed.so_path);
    assert_non_null(h);
    assert_int_equal(call_int_fn(h, "value", changed.so_path), 9);
    nncc_jit_unload(h);
    free(res.diagnostics);
    free(again.diagnostics);
    free(changed.diagnostics);

    /* A header that is missing fails in the preprocessor, at the file's line. */
    struct nncc_jit_result bad;
    write_in(fx, "missing.c", "int x;\n#include <no_such_header.h>\n", file, sizeof file);
    assert_int_equal(nncc_jit_compile_file(&fx->jit, file, args, 1, NULL, NULL, false, &bad),
                     NNCC_ERR_COMPILE);
    snprintf(want, sizeof want, "%s:2:10: fatal error: ", file);
    assert_non_null(bad.diagnostics);
    assert_non_null(strstr(bad.diagnostics, want));
    assert_string_equal(bad.so_path, "");
    free(bad.diagnostics);
}

/* Four processes compile the same new source into the same empty cache at
 * the same moment (released together by closing a pipe); all must succeed. */
static void test_concurrent_compile(void **state)
{
    struct fixture *fx = *state;
    static const char src[] = "int concurrent(void) { return 7 * 6 + 1; }\n";
    enum { N_CHILDREN = 4 };
    int gate[2];
    assert_int_equal(pipe(gate), 0);
    pid_t pids[N_CHILDREN];
    for (int i = 0; i < N_CHILDREN; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            close(gate[1]);
            char c;
            while (read(gate[0], &c, 1) > 0) {} /* EOF: go */
            struct nncc_jit jit;
            struct nncc_jit_result res;
            int ok = nncc_jit_init(&jit) == NNCC_OK &&
                     nncc_jit_compile(&jit, src, strlen(src), "-O1", &res) == NNCC_OK;
            if (!ok) fprintf(stderr, "child %d: %s\n", i, nncc_last_error());
            _exit(ok ? 0 : 1); /* never return into cmocka from a child */
        }
    }
    close(gate[0]);
    close(gate[1]);
    for (int i = 0; i < N_CHILDREN; i++) {
        int status;
        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }

    struct nncc_jit_result res;
    assert_int_equal(nncc_jit_compile(&fx->jit, src, strlen(src), "-O1", &res), NNCC_OK);
    assert_true(res.cache_hit);
    void *h = nncc_jit_load(res.so_path);
    assert_non_null(h);
    assert_int_equal(call_int_fn(h, "concurrent", res.so_path), 43);
    nncc_jit_unload(h);
    assert_int_equal(count_entries(fx->jit.cache_dir, ".tmp."), 0);
}

/* Generated code includes nncc.h; it must come from the embedded copy. */
static void test_embedded_header(void **state)
{
    struct fixture *fx = *state;
    static const char src[] = "#include \"nncc.h\"\n"
                              "int shape_code(void) {\n"
                              "    struct nncc_shape s = NNCC_SHAPE(28, 28, 1);\n"
                              "    return s.rank * 100 + (int)s.dim[1];\n"
                              "}\n";
    struct nncc_jit_result res;
    enum nncc_status st = nncc_jit_compile(&fx->jit, src, strlen(src), NULL, &res);
    if (st != NNCC_OK) fprintf(stderr, "%s\n", nncc_last_error());
    assert_int_equal(st, NNCC_OK);
    free(res.diagnostics);
    void *h = nncc_jit_load(res.so_path);
    assert_non_null(h);
    assert_int_equal(call_int_fn(h, "shape_code", res.so_path), 328);
    nncc_jit_unload(h);

    char hex[NNCC_SHA256_HEX_SIZE], path[1400];
    nncc_sha256_str(nncc_header_text, nncc_header_len, hex);
    snprintf(path, sizeof path, "%s/include/%s/nncc.h", fx->jit.cache_dir, hex);
    size_t len;
    char *text = nncc_read_file(path, &len);
    assert_non_null(text);
    assert_int_equal(len, nncc_header_len);
    assert_memory_equal(text, nncc_header_text, len);
    free(text);
}

/* ---- Damaged cache entries --------------------------------------------- */

/* Writes `len` bytes of `data` to `path`, replacing it. */
static void put_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* Copies file `from` to `to`. */
static void copy_file(const char *from, const char *to)
{
    size_t len;
    char *data = nncc_read_file(from, &len);
    assert_non_null(data);
    put_file(to, data, len);
    free(data);
}

/* Compiles answer_src (the hit or rebuild under test), loads it and checks
 * that the loaded code is the one compiled from answer_src. */
static void expect_answer(struct fixture *fx, bool hit)
{
    struct nncc_jit_result res;
    enum nncc_status st = nncc_jit_compile(&fx->jit, answer_src, strlen(answer_src), "-O1", &res);
    if (st != NNCC_OK) fprintf(stderr, "%s\n", nncc_last_error());
    assert_int_equal(st, NNCC_OK);
    assert_int_equal(res.cache_hit, hit);
    free(res.diagnostics);
    void *h = nncc_jit_load(res.so_path);
    if (!h) fprintf(stderr, "%s\n", nncc_last_error());
    assert_non_null(h);
    assert_int_equal(call_int_fn(h, "answer", res.so_path), 42);
    nncc_jit_unload(h);
}

/* Compiles answer_src once; its object's path goes to so_path. */
static void first_compile(struct fixture *fx, char *so_path, size_t size)
{
    struct nncc_jit_result res;
    assert_int_equal(nncc_jit_compile(&fx->jit, answer_src, strlen(answer_src), "-O1", &res),
                     NNCC_OK);
    assert_false(res.cache_hit);
    free(res.diagnostics);
    snprintf(so_path, size, "%s", res.so_path);
}

/* A truncated object (a compile killed by a full disk, a copy cut short)
 * is never mapped (mapping it crashed every run with SIGBUS) and is
 * rebuilt by the next compile. */
static void test_truncated_entry(void **state)
{
    struct fixture *fx = *state;
    char so[1300];
    first_compile(fx, so, sizeof so);
    struct stat st;
    assert_int_equal(stat(so, &st), 0);
    assert_int_equal(truncate(so, st.st_size / 2), 0);

    assert_null(nncc_jit_load(so));
    assert_int_equal(nncc_last_status(), NNCC_ERR_COMPILE);
    char want[1400];
    snprintf(want, sizeof want, "JIT cache entry '%s' is damaged", so);
    assert_non_null(strstr(nncc_last_error(), want));

    expect_answer(fx, false); /* rebuilt, not a hit */
    expect_answer(fx, true);  /* and then a hit again */
}

static void test_empty_entry(void **state)
{
    struct fixture *fx = *state;
    char so[1300];
    first_compile(fx, so, sizeof so);
    put_file(so, "", 0);
    expect_answer(fx, false);
    expect_answer(fx, true);
}

static void test_garbage_entry(void **state)
{
    struct fixture *fx = *state;
    char so[1300];
    first_compile(fx, so, sizeof so);
    char junk[5000];
    memset(junk, 'x', sizeof junk);
    put_file(so, junk, sizeof junk);
    expect_answer(fx, false);
    expect_answer(fx, true);
}

/* Another source's object under answer_src's key: first alone, then with
 * its hash file too (then only the fingerprint inside tells). */
static void test_other_objects_entry(void **state)
{
    struct fixture *fx = *state;
    static const char other_src[] = "int answer(void) { return 7; }\n";
    char so[1300], so_hash[1320], other_hash[1320];
    first_compile(fx, so, sizeof so);
    struct nncc_jit_result other;
    assert_int_equal(nncc_jit_compile(&fx->jit, other_src, strlen(other_src), "-O1", &other),
                     NNCC_OK);
    free(other.diagnostics);
    snprintf(so_hash, sizeof so_hash, "%s.sha256", so);
    snprintf(other_hash, sizeof other_hash, "%s.sha256", other.so_path);

    copy_file(other.so_path, so);
    expect_answer(fx, false);

    /* The compile finds out before loading anything... */
    copy_file(other.so_path, so);
    copy_file(other_hash, so_hash);
    expect_answer(fx, false);
    expect_answer(fx, true);

    /* ...and so does a load of the entry. */
    copy_file(other.so_path, so);
    copy_file(other_hash, so_hash);
    assert_null(nncc_jit_load(so));
    assert_non_null(strstr(nncc_last_error(), "is damaged (it does not hold its key"));
    expect_answer(fx, false);
}

/* An object that passes the hash check and holds the key's text, but whose
 * nncc_cache_key symbol names another key: the check after dlopen refuses
 * it and drops its hash file, so the next compile rebuilds it. */
static void test_wrong_fingerprint_symbol(void **state)
{
    struct fixture *fx = *state;
    char so[1300], so_hash[1320];
    first_compile(fx, so, sizeof so);
    snprintf(so_hash, sizeof so_hash, "%s.sha256", so);
    const char *base = strrchr(so, '/') + 1;
    char decoy[400];
    snprintf(decoy, sizeof decoy,
             "const char decoy_key[] = \"%.64s\";\nint answer(void) { return 7; }\n", base);
    struct nncc_jit_result res;
    assert_int_equal(nncc_jit_compile(&fx->jit, decoy, strlen(decoy), "-O1", &res), NNCC_OK);
    free(res.diagnostics);
    copy_file(res.so_path, so);
    size_t len;
    char *data = nncc_read_file(so, &len);
    assert_non_null(data);
    char hex[NNCC_SHA256_HEX_SIZE + 1];
    nncc_sha256_str(data, len, hex);
    free(data);
    strcat(hex, "\n");
    put_file(so_hash, hex, strlen(hex));

    assert_null(nncc_jit_load(so));
    assert_non_null(strstr(nncc_last_error(), "nncc_cache_key"));
    expect_answer(fx, false);
    expect_answer(fx, true);
}

/* The source kept next to a missing object is rewritten, not trusted: a
 * truncated one would compile into the wrong code. */
static void test_damaged_source_entry(void **state)
{
    struct fixture *fx = *state;
    char so[1300], c_path[1300];
    first_compile(fx, so, sizeof so);
    snprintf(c_path, sizeof c_path, "%.*s.c", (int)(strlen(so) - 3), so);
    assert_int_equal(unlink(so), 0);
    put_file(c_path, "int answer(void) { return 1; }\n", 31);
    expect_answer(fx, false);
}

/* The header copy in the cache is compared with the embedded one. */
static void test_damaged_header_entry(void **state)
{
    struct fixture *fx = *state;
    static const char src[] = "#include \"nncc.h\"\nint answer(void) { return NNCC_ERR_IO * 0 + 42; }\n";
    char hex[NNCC_SHA256_HEX_SIZE], path[1400];
    nncc_sha256_str(nncc_header_text, nncc_header_len, hex);
    snprintf(path, sizeof path, "%s/include/%s", fx->jit.cache_dir, hex);
    char inc[1100];
    snprintf(inc, sizeof inc, "%s/include", fx->jit.cache_dir);
    mkdir(inc, 0700);
    mkdir(path, 0700);
    strcat(path, "/nncc.h");
    put_file(path, "#error damaged\n", 15);
    struct nncc_jit_result res;
    enum nncc_status st = nncc_jit_compile(&fx->jit, src, strlen(src), NULL, &res);
    if (st != NNCC_OK) fprintf(stderr, "%s\n", nncc_last_error());
    assert_int_equal(st, NNCC_OK);
    free(res.diagnostics);
    size_t len;
    char *text = nncc_read_file(path, &len);
    assert_non_null(text);
    assert_int_equal(len, nncc_header_len);
    free(text);
}

/* Runs an executable; its exit status. */
static int run_exe(const char *path)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        execl(path, path, (char *)NULL);
        _exit(127);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

/* Cached executables (`nncc run`) are checked the same way. */
static void test_damaged_exe_entry(void **state)
{
    struct fixture *fx = *state;
    static const char src[] = "int main(void) { return 3; }\n";
    struct nncc_jit_result res;
    assert_int_equal(nncc_jit_compile_exe(&fx->jit, src, strlen(src), "-O1", NULL, &res), NNCC_OK);
    assert_false(res.cache_hit);
    free(res.diagnostics);
    assert_int_equal(run_exe(res.so_path), 3);
    struct stat st;
    assert_int_equal(stat(res.so_path, &st), 0);
    assert_int_equal(truncate(res.so_path, st.st_size / 2), 0);

    struct nncc_jit_result again;
    assert_int_equal(nncc_jit_compile_exe(&fx->jit, src, strlen(src), "-O1", NULL, &again),
                     NNCC_OK);
    assert_false(again.cache_hit);
    free(again.diagnostics);
    assert_int_equal(run_exe(again.so_path), 3);
}

/* ---- Temporary files and permissions ----------------------------------- */

/* Makes an empty file whose modification time is `age_s` seconds ago. */
static void make_aged(const char *path, long age_s)
{
    put_file(path, "partial", 7);
    struct timespec t[2];
    clock_gettime(CLOCK_REALTIME, &t[0]);
    t[0].tv_sec -= age_s;
    t[1] = t[0];
    assert_int_equal(utimensat(AT_FDCWD, path, t, 0), 0);
}

/* Temporary files left by killed compiles are removed once they are old
 * (writing an entry sweeps them); a recent one may belong to a compile
 * still running and is kept. */
static void test_stale_temp_files(void **state)
{
    struct fixture *fx = *state;
    char hex[NNCC_SHA256_HEX_SIZE], stale[1400], stale_h[1500], fresh[1400], other[1400];
    snprintf(stale, sizeof stale, "%s/0123abcd.so.tmp.AbCdEf", fx->jit.cache_dir);
    snprintf(fresh, sizeof fresh, "%s/4567abcd.so.tmp.GhIjKl", fx->jit.cache_dir);
    snprintf(other, sizeof other, "%s/notes.txt", fx->jit.cache_dir);
    make_aged(stale, 2 * 3600);
    make_aged(fresh, 60);
    make_aged(other, 2 * 3600); /* not ours to remove */
    struct nncc_jit_result res;
    assert_int_equal(nncc_jit_compile(&fx->jit, answer_src, strlen(answer_src), NULL, &res),
                     NNCC_OK);
    free(res.diagnostics);
    nncc_sha256_str(nncc_header_text, nncc_header_len, hex);
    snprintf(stale_h, sizeof stale_h, "%s/include/%s/nncc.h.tmp.MnOpQr", fx->jit.cache_dir, hex);
    make_aged(stale_h, 2 * 3600);

    static const char src2[] = "int other(void) { return 1; }\n";
    assert_int_equal(nncc_jit_compile(&fx->jit, src2, strlen(src2), NULL, &res), NNCC_OK);
    free(res.diagnostics);

    struct stat st;
    assert_int_not_equal(stat(stale, &st), 0);
    assert_int_not_equal(stat(stale_h, &st), 0);
    assert_int_equal(stat(fresh, &st), 0);
    assert_int_equal(stat(other, &st), 0);
}

/* The cache is per user: its folder is private, its entries readable, and
 * a folder other users can write is refused (they could plant code). */
static void test_cache_permissions(void **state)
{
    struct fixture *fx = *state;
    struct stat st;
    assert_int_equal(stat(fx->jit.cache_dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    struct nncc_jit_result res;
    assert_int_equal(nncc_jit_compile(&fx->jit, answer_src, strlen(answer_src), NULL, &res),
                     NNCC_OK);
    free(res.diagnostics);
    assert_int_equal(stat(res.so_path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0755);

    assert_int_equal(chmod(fx->jit.cache_dir, 0777), 0);
    struct nncc_jit jit;
    assert_int_equal(nncc_jit_init(&jit), NNCC_ERR_IO);
    char want[1400];
    snprintf(want, sizeof want,
             "JIT cache folder '%s' is writable by other users (mode 0777)", fx->jit.cache_dir);
    assert_non_null(strstr(nncc_last_error(), want));
    assert_int_equal(chmod(fx->jit.cache_dir, 0755), 0);
    assert_int_equal(nncc_jit_init(&jit), NNCC_OK);

    /* Another user's folder (only root can make one to test with). */
    if (chown(fx->jit.cache_dir, 12345, (gid_t)-1) == 0) {
        assert_int_equal(nncc_jit_init(&jit), NNCC_ERR_IO);
        snprintf(want, sizeof want, "JIT cache folder '%s' belongs to another user (uid 12345)",
                 fx->jit.cache_dir);
        assert_non_null(strstr(nncc_last_error(), want));
        assert_int_equal(chown(fx->jit.cache_dir, geteuid(), (gid_t)-1), 0);
    }
}

/* ---- Through the public API -------------------------------------------- */

/* Dense(3) on 4 inputs, seeded; with `relu` another kernel of the same
 * shapes. */
static nncc_model *tiny_model(bool relu)
{
    nncc_graph *g = nncc_graph_new();
    assert_non_null(g);
    nncc_graph_set_seed(g, 5);
    nncc_tensor *x = nncc_input(g, NNCC_SHAPE(4));
    nncc_tensor *y = nncc_dense(x, .units = 3, .activation = relu ? NNCC_RELU : NNCC_LINEAR);
    nncc_model *m = nncc_model_new(x, y);
    assert_non_null(m);
    return m;
}

/* Predicts two fixed samples with a fresh tiny model into out[6]. */
static void tiny_predict(bool relu, float out[6])
{
    static const float xv[8] = {1, -2, 3, -4, -1, 2, -3, 4};
    nncc_model *m = tiny_model(relu);
    struct nncc_array *r = nncc_predict_rows(m, xv, 2);
    if (!r) fprintf(stderr, "%s\n", nncc_last_error());
    assert_non_null(r);
    assert_int_equal(nncc_array_size(r), 6);
    memcpy(out, r->data, sizeof(float) * 6);
    nncc_array_free(r);
    nncc_model_free(m);
}

/* The one object in the cache folder whose name is not in `skip`; its path
 * goes to path. */
static void find_object(const char *dir, const char *skip, char *path, size_t size)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    path[0] = '\0';
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n < 3 || strcmp(e->d_name + n - 3, ".so") != 0) continue;
        if (skip && strstr(skip, e->d_name)) continue;
        snprintf(path, size, "%s/%s", dir, e->d_name);
    }
    closedir(d);
    assert_true(path[0] != '\0');
}

/* nncc_predict over a damaged cache: a truncated object crashed it with
 * SIGBUS, another model's object under its key gave that model's numbers
 * (or aborted in free() when the shapes differ).  Each time the object is
 * rebuilt and the numbers are the first run's, bit for bit. */
static void test_predict_damaged_cache(void **state)
{
    struct fixture *fx = *state;
    float want[6], got[6], relu[6];
    tiny_predict(false, want);
    bool negative = false;
    for (int i = 0; i < 6; i++) negative |= want[i] < 0;
    assert_true(negative); /* so that ReLU's code gives other numbers */
    char so[1400], other[1400], hash[1500], other_hash[1500];
    find_object(fx->jit.cache_dir, NULL, so, sizeof so);

    struct stat st;
    assert_int_equal(stat(so, &st), 0);
    assert_int_equal(truncate(so, st.st_size / 2), 0);
    tiny_predict(false, got);
    assert_memory_equal(got, want, sizeof want);

    tiny_predict(true, relu);
    find_object(fx->jit.cache_dir, so, other, sizeof other);
    copy_file(other, so);
    tiny_predict(false, got);
    assert_memory_equal(got, want, sizeof want);

    snprintf(hash, sizeof hash, "%s.sha256", so);
    snprintf(other_hash, sizeof other_hash, "%s.sha256", other);
    copy_file(other, so);
    copy_file(other_hash, hash);
    tiny_predict(false, got);
    assert_memory_equal(got, want, sizeof want);
}

/* ---- Configuration and errors ------------------------------------------ */

/* A malloc'd copy of an environment variable (NULL when unset), for
 * restore_env(). */
static char *save_env(const char *name)
{
    const char *v = getenv(name);
    return v ? strdup(v) : NULL;
}

/* Puts back (and frees) what save_env() saved. */
static void restore_env(const char *name, char *saved)
{
    if (saved) setenv(name, saved, 1);
    else unsetenv(name);
    free(saved);
}

static void test_bad_compiler(void **state)
{
    (void)state;
    char *saved = save_env("NNCC_CC");
    setenv("NNCC_CC", "/nonexistent/nncc-no-such-cc", 1);
    struct nncc_jit jit;
    enum nncc_status st = nncc_jit_init(&jit);
    restore_env("NNCC_CC", saved);
    assert_int_equal(st, NNCC_ERR_COMPILE);
    assert_non_null(strstr(nncc_last_error(), "no C compiler found"));
    assert_non_null(strstr(nncc_last_error(), "$NNCC_CC=/nonexistent/nncc-no-such-cc"));
}

static void test_verbose_flag(void **state)
{
    (void)state;
    char *saved = save_env("NNCC_VERBOSE");
    static const struct { const char *value; bool verbose; } cases[] = {
        {NULL, false}, {"", false}, {"0", false}, {"1", true}, {"yes", true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (cases[i].value) setenv("NNCC_VERBOSE", cases[i].value, 1);
        else unsetenv("NNCC_VERBOSE");
        struct nncc_jit jit;
        assert_int_equal(nncc_jit_init(&jit), NNCC_OK);
        assert_int_equal(jit.verbose, cases[i].verbose);
    }
    restore_env("NNCC_VERBOSE", saved);
}

static void test_cache_folder_error(void **state)
{
    struct fixture *fx = *state;
    /* A regular file where the cache folder's parent should be. */
    char file[600];
    snprintf(file, sizeof file, "%s/not-a-folder", fx->dir);
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fclose(f);
    char *saved = save_env("XDG_CACHE_HOME");
    setenv("XDG_CACHE_HOME", file, 1);
    struct nncc_jit jit;
    enum nncc_status st = nncc_jit_init(&jit);
    restore_env("XDG_CACHE_HOME", saved);
    assert_int_equal(st, NNCC_ERR_IO);
    char want[700];
    snprintf(want, sizeof want, "cannot create cache folder '%s/nncc': ", file);
    assert_non_null(strstr(nncc_last_error(), want));
}

static void test_read_file_missing(void **state)
{
    (void)state;
    size_t len = 123;
    assert_null(nncc_read_file("/nonexistent/nncc-file", &len));
    assert_int_equal(len, 0);
    assert_int_equal(nncc_last_status(), NNCC_ERR_IO);
    assert_string_equal(nncc_last_error(),
                        "cannot open '/nonexistent/nncc-file': No such file or directory");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_vectors),
        cmocka_unit_test_setup_teardown(test_compile_load_and_cache_hit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_syntax_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_symbol, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compile_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_compile, setup, teardown),
        cmocka_unit_test_setup_teardown(test_embedded_header, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncated_entry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_entry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage_entry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_objects_entry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_fingerprint_symbol, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_source_entry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_header_entry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_exe_entry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_temp_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_permissions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_predict_damaged_cache, setup, teardown),
        cmocka_unit_test(test_bad_compiler),
        cmocka_unit_test_setup_teardown(test_verbose_flag, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_folder_error, setup, teardown),
        cmocka_unit_test(test_read_file_missing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
