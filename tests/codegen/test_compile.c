/*
 * test_compile.c — `nncc compile` (cli/compile.c, codegen/aot.c) end to end.
 *
 * For an example model (argv[1]: its file in examples/, without .c) the
 * test loads the model in-process through the JIT (as `nncc` does), saves
 * it, and compiles the saved file with every --emit kind: the standalone
 * program (run on .npy input; outputs equal nncc_predict's to 1e-6; `ldd`
 * lists only libc, libm and the loader; size within the weights + 64 KiB),
 * C (compiled warning-free by gcc and clang with -std=c11 -Wall -Wextra;
 * its object needs nothing but libm and memcpy/memset), the object, the
 * static library and external weights, each linked with tests/codegen/aot_driver.c
 * (a user of the documented ABI) and compared again.  FILE.c itself is
 * compiled once too (same weights: the initializers are seeded).
 *
 * Without argv[1] it runs the other groups: the deployment program's
 * errors (wrong shape, truncated and unknown files exit 2), its streaming
 * input (gzip bombs refused under `ulimit -v`, out of memory exits 1, a
 * FIFO refused without blocking), hostile model
 * and layer names, the training step (a few steps through the emitted C
 * against nncc_fit), --threads (ldd shows the OpenMP runtime), usage
 * errors, and the options that change what is built or read: --weights
 * (predictions as nncc_predict's with those weights), the program's --scale
 * and --cflags (a -D and an -include the program shows, a refused flag).
 * Children write into a per-test mkdtemp() folder and share the build's
 * test cache.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <zlib.h>

#include "include/nncc.h"
#include "runtime/jit/jit.h"

extern char **environ;

#define NNCC NNCC_BINARY_DIR "/nncc"
#define EXAMPLES NNCC_SOURCE_DIR "/examples/"
#define DRIVER NNCC_SOURCE_DIR "/tests/codegen/aot_driver.c"

static const char *example; /* argv[1] */

/* ---- Running programs --------------------------------------------------- */

struct run {
    int status;
    char *out, *err;
};

static void run_free(struct run *r)
{
    free(r->out);
    free(r->err);
}

/* Runs argv (argv[0] found on PATH) in folder dir, stdout and stderr into
 * files there, stdin from /dev/null. */
static struct run run_argv(const char *dir, const char *const *argv)
{
    char out_path[600], err_path[600];
    snprintf(out_path, sizeof out_path, "%s/.stdout", dir);
    snprintf(err_path, sizeof err_path, "%s/.stderr", dir);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int in = open("/dev/null", O_RDONLY);
        int o = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int e = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (in < 0 || o < 0 || e < 0 || dup2(in, 0) < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0 ||
            chdir(dir) != 0)
            _exit(126);
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    int ws;
    while (waitpid(pid, &ws, 0) < 0)
        assert_int_equal(errno, EINTR);
    struct run r = {.status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws)};
    r.out = nncc_read_file(out_path, NULL);
    r.err = nncc_read_file(err_path, NULL);
    assert_non_null(r.out);
    assert_non_null(r.err);
    return r;
}
#define RUN(dir, ...) run_argv((dir), (const char *const[]){__VA_ARGS__, NULL})

static void expect_status_(struct run *r, int status, const char *what, int line)
{
    if (r->status != status) {
        fprintf(stderr, "---- %s: stdout:\n%s---- stderr:\n%s----\n", what, r->out, r->err);
        fail_msg("line %d: %s: exit status %d, expected %d", line, what, r->status, status);
    }
}
#define expect_status(r, st, what) expect_status_((r), (st), (what), __LINE__)

/* Runs and expects success; frees the result. */
#define RUN_OK(dir, ...)                                                          \
    do {                                                                          \
        struct run r_ = RUN(dir, __VA_ARGS__);                                    \
        expect_status(&r_, 0, #__VA_ARGS__);                                      \
        run_free(&r_);                                                            \
    } while (0)

static char *make_dir(void)
{
    char *dir = strdup("/tmp/nncc-test-compile-XXXXXX");
    assert_non_null(dir);
    assert_non_null(mkdtemp(dir));
    return dir;
}

static void remove_dir(char *dir)
{
    RUN_OK("/", "rm", "-rf", dir);
    free(dir);
}

/* dir/name in a caller's buffer of 600 bytes. */
static const char *path_in(char *buf, const char *dir, const char *name)
{
    snprintf(buf, 600, "%s/%s", dir, name);
    return buf;
}

static void write_bytes(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static long long file_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (long long)st.st_size;
}

/* ---- Models ------------------------------------------------------------- */

/* Compiles examples/NAME.c through the JIT and calls its model(); the
 * object stays loaded (*handle) while the model lives. */
static nncc_model *load_example(const char *name, void **handle)
{
    char file[600], inc[600];
    snprintf(file, sizeof file, EXAMPLES "%s.c", name);
    snprintf(inc, sizeof inc, "-I" EXAMPLES);
    struct nncc_jit jit;
    assert_int_equal(nncc_jit_init(&jit), NNCC_OK);
    char *text = NULL, *diag = NULL;
    size_t len;
    const char *args[] = {inc};
    assert_int_equal(nncc_jit_preprocess(&jit, file, args, 1, &text, &len, &diag), NNCC_OK);
    struct nncc_jit_result res = {0};
    assert_int_equal(nncc_jit_compile(&jit, text, len, "-O0 -g0 -w", &res), NNCC_OK);
    free(text);
    free(res.diagnostics);
    *handle = nncc_jit_load(res.so_path);
    assert_non_null(*handle);
    void *sym = nncc_jit_symbol(*handle, "model", res.so_path);
    assert_non_null(sym);
    nncc_model *(*entry)(void);
    memcpy(&entry, &sym, sizeof entry);
    nncc_model *m = entry();
    assert_non_null(m);
    return m;
}

/* n rows of deterministic pseudo-random input in [-1, 1). */
static struct nncc_array *random_input(const nncc_model *m, int64_t n)
{
    struct nncc_shape s = nncc_tensor_shape(nncc_model_input(m, 0));
    s.dim[0] = n;
    struct nncc_array *x = nncc_array_new(s);
    assert_non_null(x);
    uint64_t z = 12345;
    for (int64_t i = 0; i < nncc_array_size(x); i++) {
        z = z * 6364136223846793005ull + 1442695040888963407ull;
        x->data[i] = (float)((double)(z >> 40) / (double)(1ull << 24) * 2 - 1);
    }
    return x;
}

static void expect_close(const float *got, const float *want, int64_t count, double tol,
                         const char *what)
{
    double worst = 0;
    int64_t at = 0;
    for (int64_t i = 0; i < count; i++) {
        double d = fabs((double)got[i] - (double)want[i]);
        if (!(d <= worst)) {
            worst = d;
            at = i;
        }
    }
    if (!(worst <= tol))
        fail_msg("%s: max abs difference %g at %lld (%g vs %g), tolerance %g", what, worst,
                 (long long)at, (double)got[at], (double)want[at], tol);
    printf("    %s: max abs difference %g\n", what, worst);
}

/* Reads n rows of raw float32 written by the driver and compares. */
static void expect_raw_close(const char *path, const struct nncc_array *want, const char *what)
{
    size_t len;
    char *data = nncc_read_file(path, &len);
    assert_non_null(data);
    assert_int_equal(len, (size_t)nncc_array_size(want) * sizeof(float));
    expect_close((const float *)(void *)data, want->data, nncc_array_size(want), 1e-6, what);
    free(data);
}

/* Each line of `ldd prog` names the vDSO, the loader, libc, libm, or
 * (allow_omp) an OpenMP runtime; returns whether one named an OpenMP one. */
static bool check_ldd(const char *dir, const char *prog, bool allow_omp)
{
    struct run r = RUN(dir, "ldd", prog);
    expect_status(&r, 0, "ldd");
    bool omp = false;
    for (char *line = strtok(r.out, "\n"); line; line = strtok(NULL, "\n")) {
        while (*line == ' ' || *line == '\t')
            line++;
        bool is_omp = strncmp(line, "libomp", 6) == 0 || strncmp(line, "libgomp", 7) == 0;
        omp |= is_omp;
        bool ok = strncmp(line, "linux-vdso", 10) == 0 || strncmp(line, "libc.so", 7) == 0 ||
                  strncmp(line, "libm.so", 7) == 0 || strstr(line, "ld-linux") ||
                  (allow_omp && is_omp);
        if (!ok)
            fail_msg("%s links an unexpected library: %s", prog, line);
    }
    run_free(&r);
    return omp;
}

/* Every undefined symbol of an object is a libm/string function or OpenMP. */
static void check_undefined(const char *dir, const char *obj)
{
    static const char *const allowed[] = {"memcpy", "memset", "memmove", "expf", "exp", "logf",
                                          "log", "tanhf", "tanh", "erff", "erf", "log1pf",
                                          "log1p", "expm1f", "expm1", "sqrtf", "sqrt", "fabsf",
                                          "powf", "fmaxf", "fminf", "floorf", "ceilf", NULL};
    struct run r = RUN(dir, "nm", "-u", obj);
    expect_status(&r, 0, "nm -u");
    for (char *line = strtok(r.out, "\n"); line; line = strtok(NULL, "\n")) {
        char *sym = strrchr(line, ' ');
        sym = sym ? sym + 1 : line;
        bool ok = strncmp(sym, "omp_", 4) == 0 || strncmp(sym, "GOMP_", 5) == 0 ||
                  strncmp(sym, "__kmpc", 6) == 0 || strncmp(sym, "__stack_chk", 11) == 0;
        for (int i = 0; allowed[i] && !ok; i++)
            ok = strcmp(sym, allowed[i]) == 0;
        if (!ok)
            fail_msg("%s needs '%s', which is neither libm nor memcpy/memset", obj, sym);
    }
    run_free(&r);
}

/* cc -O2 -march=native driver + the artifact pieces -> dir/exe. */
static void build_driver(const char *dir, const char *name, const char *exe, const char *piece1,
                         const char *piece2, bool train)
{
    char hdr[300], nm[300];
    snprintf(hdr, sizeof hdr, "-DAOT_HEADER=\"%s.h\"", name);
    snprintf(nm, sizeof nm, "-DAOT_NAME=%s", name);
    const char *argv[20] = {"cc", "-std=c11", "-O2", "-march=native", hdr, nm, "-I.", "-o", exe,
                            DRIVER};
    int argc = 10;
    if (train)
        argv[argc++] = "-DAOT_TRAIN";
    argv[argc++] = piece1;
    if (piece2)
        argv[argc++] = piece2;
    argv[argc++] = "-lm";
    argv[argc] = NULL;
    struct run r = run_argv(dir, argv);
    expect_status(&r, 0, "building the driver");
    run_free(&r);
}

/* ---- Every --emit kind of one example ------------------------------------ */

static void test_example(void **state)
{
    (void)state;
    printf("  model %s\n", example);
    void *handle;
    nncc_model *m = load_example(example, &handle);
    char *dir = make_dir();
    const int64_t n = 37; /* a partial last batch */
    struct nncc_array *x = random_input(m, n);
    struct nncc_array *want = nncc_predict(m, x);
    assert_non_null(want);
    char model_path[600], x_npy[600], x_raw[600], pb[600];
    path_in(model_path, dir, "model.safetensors");
    path_in(x_npy, dir, "x.npy");
    path_in(x_raw, dir, "x.raw");
    assert_int_equal(nncc_save(m, model_path), NNCC_OK);
    assert_int_equal(nncc_save_npy(x_npy, x), NNCC_OK);
    write_bytes(x_raw, x->data, (size_t)nncc_array_size(x) * sizeof(float));
    long long weights = (long long)nncc_model_count_params(m) * 4;
    char nbuf[32];
    snprintf(nbuf, sizeof nbuf, "%lld", (long long)n);

    /* exe from the saved model: outputs, classes, ldd, size */
    RUN_OK(dir, NNCC, "compile", model_path, "-o", "prog");
    RUN_OK(dir, "./prog", "--input", "x.npy", "--output", "y.npy");
    struct nncc_array *got = nncc_load_npy(path_in(pb, dir, "y.npy"));
    assert_non_null(got);
    assert_int_equal(nncc_array_size(got), nncc_array_size(want));
    expect_close(got->data, want->data, nncc_array_size(want), 1e-6, "exe (.npy)");
    nncc_array_free(got);
    struct run r = RUN(dir, "./prog", "--input", "x.raw", "--format", "raw");
    expect_status(&r, 0, "exe --format raw (classes)");
    int lines = 0;
    for (const char *c = r.out; *c; c++)
        lines += *c == '\n';
    assert_int_equal(lines, n);
    run_free(&r);
    check_ldd(dir, "./prog", false);
    long long size = file_size(path_in(pb, dir, "prog"));
    printf("    exe: %lld bytes, weights %lld bytes, %+lld\n", size, weights, size - weights);
    if (size > weights + 65536)
        fail_msg("the program is %lld bytes, more than the weights (%lld) + 64 KiB", size,
                 weights);

    /* exe straight from FILE.c (the same seeded weights) */
    char file[600];
    snprintf(file, sizeof file, EXAMPLES "%s.c", example);
    RUN_OK(dir, NNCC, "compile", file, "-o", "prog2");
    RUN_OK(dir, "./prog2", "--input", "x.npy", "--output", "y2.npy");
    got = nncc_load_npy(path_in(pb, dir, "y2.npy"));
    assert_non_null(got);
    expect_close(got->data, want->data, nncc_array_size(want), 1e-6, "exe from FILE.c");
    nncc_array_free(got);

    /* c: warning-free with gcc and clang, only libm/string, then linked */
    RUN_OK(dir, NNCC, "compile", model_path, "--emit", "c", "-o", "mc");
    RUN_OK(dir, "gcc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-O2", "-c", "mc.c", "-o",
           "mc_gcc.o");
    RUN_OK(dir, "clang", "-std=c11", "-Wall", "-Wextra", "-Werror", "-O2", "-c", "mc.c", "-o",
           "mc_clang.o");
    check_undefined(dir, "mc_gcc.o");
    check_undefined(dir, "mc_clang.o");
    build_driver(dir, "mc", "drv_c", "mc.c", NULL, false);
    RUN_OK(dir, "./drv_c", "predict", "x.raw", nbuf, "y_c.raw");
    expect_raw_close(path_in(pb, dir, "y_c.raw"), want, "--emit c");

    /* obj and lib */
    RUN_OK(dir, NNCC, "compile", model_path, "--emit", "obj", "-o", "mo");
    build_driver(dir, "mo", "drv_o", "mo.o", NULL, false);
    RUN_OK(dir, "./drv_o", "predict", "x.raw", nbuf, "y_o.raw");
    expect_raw_close(path_in(pb, dir, "y_o.raw"), want, "--emit obj");
    RUN_OK(dir, NNCC, "compile", model_path, "--emit", "lib", "-o", "ml");
    build_driver(dir, "ml", "drv_l", "-L.", "-lml", false);
    RUN_OK(dir, "./drv_l", "predict", "x.raw", nbuf, "y_l.raw");
    expect_raw_close(path_in(pb, dir, "y_l.raw"), want, "--emit lib");

    /* external weights: the caller loads me.bin and passes it in */
    RUN_OK(dir, NNCC, "compile", model_path, "--emit", "obj", "--external-weights", "-o", "me");
    build_driver(dir, "me", "drv_e", "me.o", NULL, false);
    RUN_OK(dir, "./drv_e", "predict", "x.raw", nbuf, "y_e.raw", "me.bin");
    expect_raw_close(path_in(pb, dir, "y_e.raw"), want, "--external-weights");
    long long obj = file_size(path_in(pb, dir, "me.o")), bin = file_size(path_in(pb, dir, "me.bin"));
    printf("    external: object %lld bytes, me.bin %lld bytes\n", obj, bin);
    assert_true(bin >= weights && bin < weights + 4096);

    nncc_array_free(x);
    nncc_array_free(want);
    nncc_model_free(m);
    nncc_jit_unload(handle);
    remove_dir(dir);
}

/* ---- The deployment program's input handling ----------------------------- */

/* Input (32) -> Dense 16 relu -> Dense 8 softmax, with optional names. */
static nncc_model *small_model(const char *model_name, const char *l1, const char *l2)
{
    nncc_graph *g = nncc_graph_new();
    nncc_tensor *x = nncc_input(g, NNCC_SHAPE(32));
    nncc_tensor *h = nncc_dense(x, .units = 16, .activation = NNCC_RELU, .name = l1);
    nncc_tensor *y = nncc_dense(h, .units = 8, .activation = NNCC_SOFTMAX, .name = l2);
    nncc_model *m = nncc_model_new(x, y, .name = model_name);
    assert_non_null(m);
    return m;
}

static void expect_fails(const char *dir, const char *input, const char *part)
{
    struct run r = RUN(dir, "./prog", "--input", input);
    expect_status(&r, 2, input);
    if (!strstr(r.err, part))
        fail_msg("%s: the message \"%s\" does not say \"%s\"", input, r.err, part);
    run_free(&r);
}

static void write_gz(const char *path, const void *data, size_t len)
{
    gzFile f = gzopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(gzwrite(f, data, (unsigned)len), (int)len);
    assert_int_equal(gzclose(f), Z_OK);
}

static void test_program_inputs(void **state)
{
    (void)state;
    nncc_model *m = small_model(NULL, NULL, NULL);
    char *dir = make_dir();
    char model_path[600], pb[600];
    path_in(model_path, dir, "model.safetensors");
    assert_int_equal(nncc_save(m, model_path), NNCC_OK);
    RUN_OK(dir, NNCC, "compile", model_path, "-o", "prog", "--batch", "4");

    /* IDX ubyte, gzip-compressed: scaled by 1/255 like the library's loader */
    enum { N = 9 };
    unsigned char idx[4 + 8 + N * 32] = {0, 0, 0x08, 2, 0, 0, 0, N, 0, 0, 0, 32};
    struct nncc_array *x = nncc_array_new(NNCC_SHAPE(N, 32));
    for (int i = 0; i < N * 32; i++) {
        idx[12 + i] = (unsigned char)(i * 37 % 256);
        x->data[i] = (float)idx[12 + i] * (1.0f / 255.0f);
    }
    write_gz(path_in(pb, dir, "x.idx.gz"), idx, sizeof idx);
    write_bytes(path_in(pb, dir, "x.idx"), idx, sizeof idx);
    struct nncc_array *want = nncc_predict(m, x);
    assert_non_null(want);
    const char *inputs[] = {"x.idx.gz", "x.idx"};
    for (int k = 0; k < 2; k++) {
        RUN_OK(dir, "./prog", "--input", inputs[k], "--output", "y.npy");
        struct nncc_array *got = nncc_load_npy(path_in(pb, dir, "y.npy"));
        assert_non_null(got);
        assert_int_equal(got->shape.rank, 2);
        assert_int_equal(got->shape.dim[0], N);
        expect_close(got->data, want->data, nncc_array_size(want), 1e-6, inputs[k]);
        nncc_array_free(got);
    }
    /* classes on stdout, and the accuracy against labels */
    unsigned char labels[8 + N] = {0, 0, 0x08, 1, 0, 0, 0, N};
    for (int r = 0; r < N; r++) {
        int best = 0;
        for (int c = 1; c < 8; c++)
            if (want->data[r * 8 + c] > want->data[r * 8 + best])
                best = c;
        labels[8 + r] = (unsigned char)best;
    }
    write_bytes(path_in(pb, dir, "labels.idx"), labels, sizeof labels);
    struct run r = RUN(dir, "./prog", "--input", "x.idx.gz", "--labels", "labels.idx");
    expect_status(&r, 0, "classes");
    char expect[4 * N + 1] = "";
    for (int i = 0; i < N; i++)
        sprintf(expect + strlen(expect), "%d\n", labels[8 + i]);
    assert_string_equal(r.out, expect);
    assert_non_null(strstr(r.err, "accuracy: 1.0000 (9 of 9)"));
    run_free(&r);
    /* Labels for 8 rows of 9: refused before a class is printed (every
     * class was printed first). */
    unsigned char labels8[8 + N - 1] = {0, 0, 0x08, 1, 0, 0, 0, N - 1};
    memcpy(labels8 + 8, labels + 8, N - 1);
    write_bytes(path_in(pb, dir, "labels8.idx"), labels8, sizeof labels8);
    r = RUN(dir, "./prog", "--input", "x.idx", "--labels", "labels8.idx");
    expect_status(&r, 2, "--labels of 8 rows");
    assert_string_equal(r.out, "");
    assert_string_equal(r.err, "./prog: labels8.idx: 8 labels for 9 rows\n");
    run_free(&r);
    r = RUN(dir, "./prog", "--input", "x.idx", "--bench");
    expect_status(&r, 0, "--bench");
    assert_non_null(strstr(r.out, "latency_batch1_us: "));
    assert_non_null(strstr(r.out, "throughput_samples_per_s: "));
    run_free(&r);

    /* bad input: exit status 2 and a message */
    struct nncc_array *bad = nncc_array_new(NNCC_SHAPE(5, 31));
    assert_int_equal(nncc_save_npy(path_in(pb, dir, "shape.npy"), bad), NNCC_OK);
    expect_fails(dir, "shape.npy", "wrong shape");
    write_bytes(path_in(pb, dir, "short.idx"), idx, sizeof idx - 1);
    expect_fails(dir, "short.idx", "truncated");
    write_bytes(path_in(pb, dir, "long.idx"), idx, 12 + N * 32); /* then one more byte: */
    FILE *f = fopen(pb, "ab");
    fputc(0, f);
    fclose(f);
    expect_fails(dir, "long.idx", "trailing bytes");
    write_bytes(path_in(pb, dir, "text.txt"), "hello, world\n", 13);
    expect_fails(dir, "text.txt", "unknown format");
    size_t gz_len;
    char *gz = nncc_read_file(path_in(pb, dir, "x.idx.gz"), &gz_len);
    assert_non_null(gz);
    for (size_t cut = 1; cut < gz_len; cut += gz_len / 7 + 1) {
        write_bytes(path_in(pb, dir, "cut.gz"), gz, cut);
        expect_fails(dir, "cut.gz", "gzip");
    }
    gz[gz_len / 2] ^= 0x55; /* corrupt: a bad code, a bad distance or a CRC mismatch */
    write_bytes(path_in(pb, dir, "bad.gz"), gz, gz_len);
    expect_fails(dir, "bad.gz", "gzip");
    free(gz);
    write_bytes(path_in(pb, dir, "x.raw"), x->data, 4 * 32 * 3 - 4);
    expect_fails(dir, "x.raw", "not a whole number of rows");
    expect_fails(dir, "missing.npy", "cannot open");
    r = RUN(dir, "./prog", "--bogus");
    expect_status(&r, 2, "unknown option");
    run_free(&r);

    nncc_array_free(bad);
    nncc_array_free(x);
    nncc_array_free(want);
    nncc_model_free(m);
    remove_dir(dir);
}

/* A gzip file: head, then `zeros` zero bytes, then tail (compressed at
 * about 1000:1, a few hundred KiB for hundreds of MiB). */
static void write_gz_zeros(const char *path, const void *head, size_t head_len, size_t zeros,
                           const void *tail, size_t tail_len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    z_stream z = {0};
    assert_int_equal(deflateInit2(&z, 9, Z_DEFLATED, 31, 9, Z_DEFAULT_STRATEGY), Z_OK);
    static unsigned char zero[1 << 20], out[1 << 16];
    for (int part = 0; part < 3; part++) {
        size_t left = part == 0 ? head_len : part == 1 ? zeros : tail_len;
        const unsigned char *src = part == 0 ? head : part == 1 ? zero : tail;
        do {
            size_t n = part == 1 && left > sizeof zero ? sizeof zero : left;
            z.next_in = (unsigned char *)src;
            z.avail_in = (unsigned)n;
            int flush = part == 2 && n == left ? Z_FINISH : Z_NO_FLUSH;
            int rc;
            do {
                z.next_out = out;
                z.avail_out = sizeof out;
                rc = deflate(&z, flush);
                assert_true(rc == Z_OK || rc == Z_STREAM_END || rc == Z_BUF_ERROR);
                assert_int_equal(fwrite(out, 1, sizeof out - z.avail_out, f),
                                 sizeof out - z.avail_out);
            } while (z.avail_out == 0 || (flush == Z_FINISH && rc != Z_STREAM_END));
            left -= n;
            if (part != 1)
                src += n;
        } while (left > 0);
    }
    deflateEnd(&z);
    assert_int_equal(fclose(f), 0);
}

/* Runs ./prog ARGS in dir under `ulimit -v` (KiB of address space) and a
 * timeout, so a regression fails instead of eating the machine or hanging. */
static struct run run_limited(const char *dir, long kib, const char *args)
{
    char cmd[800];
    snprintf(cmd, sizeof cmd, "ulimit -v %ld && exec timeout 60 ./prog %s", kib, args);
    return RUN(dir, "sh", "-c", cmd);
}

static void expect_err(struct run *r, int status, const char *part, const char *what)
{
    expect_status(r, status, what);
    if (!strstr(r->err, part))
        fail_msg("%s: the message \"%s\" does not say \"%s\"", what, r->err, part);
    run_free(r);
}

/* Deployment programs stream their input: a gzip bomb is refused with
 * bounded memory as soon as its output passes what its header declares (or
 * when the header declares more than the stream can hold); running out of
 * memory exits 1, as --help says; a FIFO is refused without blocking. */
static void test_program_streams(void **state)
{
    (void)state;
    nncc_model *m = small_model(NULL, NULL, NULL);
    char *dir = make_dir();
    char model_path[600], pb[600];
    path_in(model_path, dir, "model.safetensors");
    assert_int_equal(nncc_save(m, model_path), NNCC_OK);
    RUN_OK(dir, NNCC, "compile", model_path, "-o", "prog", "--batch", "4");
    enum { MIB = 1 << 20 };

    /* 9 rows of 32 bytes declared, 256 MiB more follow: refused at the first
     * extra byte under a 64 MiB address-space limit (the whole stream was
     * once inflated first: out of memory, or 256 MiB). */
    unsigned char idx[12] = {0, 0, 0x08, 2, 0, 0, 0, 9, 0, 0, 0, 32};
    write_gz_zeros(path_in(pb, dir, "bomb.idx.gz"), idx, sizeof idx, 256 * (size_t)MIB, "", 0);
    struct run r = run_limited(dir, 64 * 1024, "--input bomb.idx.gz");
    expect_err(&r, 2, "trailing bytes: the data runs past the 288 bytes the header declares",
               "gzip bomb, undeclared output");
    /* The same as labels. */
    unsigned char x9[12 + 9 * 32] = {0, 0, 0x08, 2, 0, 0, 0, 9, 0, 0, 0, 32};
    write_bytes(path_in(pb, dir, "x.idx"), x9, sizeof x9);
    r = run_limited(dir, 64 * 1024, "--input x.idx --labels bomb.idx.gz");
    expect_err(&r, 2, "runs past", "gzip bomb as labels");

    /* A header declaring 2^31 rows of 32 bytes (64 GiB) over a ~256 KiB
     * stream: refused before anything is allocated or inflated. */
    unsigned char huge[12] = {0, 0, 0x08, 2, 0x80, 0, 0, 0, 0, 0, 0, 32};
    write_gz_zeros(path_in(pb, dir, "huge.idx.gz"), huge, sizeof huge, 256 * (size_t)MIB, "", 0);
    r = run_limited(dir, 64 * 1024, "--input huge.idx.gz");
    expect_err(&r, 2, "more than a gzip stream of this size can hold", "gzip bomb, declared");

    /* Truncated and oversized streams, small. */
    write_gz_zeros(path_in(pb, dir, "short.idx.gz"), idx, sizeof idx, 9 * 32 - 1, "", 0);
    r = RUN(dir, "./prog", "--input", "short.idx.gz");
    expect_err(&r, 2, "truncated data: 9 x 32 ubyte elements need 288 data bytes", "short gz");
    write_gz_zeros(path_in(pb, dir, "long.idx.gz"), idx, sizeof idx, 9 * 32, "x", 1);
    r = RUN(dir, "./prog", "--input", "long.idx.gz");
    expect_err(&r, 2, "trailing bytes", "long gz");
    write_gz_zeros(path_in(pb, dir, "ok.idx.gz"), idx, sizeof idx, 9 * 32, "", 0);
    r = RUN(dir, "./prog", "--input", "ok.idx.gz");
    expect_status(&r, 0, "exact gz");
    run_free(&r);

    /* A valid 64 MiB input needs 256 MiB of floats: under a 128 MiB limit
     * that is out of memory, exit status 1 as --help says (it was 2). */
    unsigned char big[12] = {0, 0, 0x08, 2, 0, 0x20, 0, 0, 0, 0, 0, 32}; /* 2 Mi rows */
    write_gz_zeros(path_in(pb, dir, "big.idx.gz"), big, sizeof big, 64 * (size_t)MIB, "", 0);
    r = run_limited(dir, 128 * 1024, "--input big.idx.gz");
    expect_err(&r, 1, "out of memory", "out of memory reading");
    r = RUN(dir, "./prog", "--help");
    expect_status(&r, 0, "--help");
    assert_non_null(strstr(r.out, "1 out of memory"));
    run_free(&r);

    /* A FIFO with no writer: refused at once, naming it (timeout: a
     * regression fails rather than hangs); '-' still reads standard input
     * (here /dev/null, a device, which is fine for it). */
    assert_int_equal(mkfifo(path_in(pb, dir, "fifo"), 0600), 0);
    r = RUN(dir, "timeout", "20", "./prog", "--input", "fifo");
    expect_err(&r, 2, "fifo: not a regular file but a FIFO", "--input FIFO");
    r = RUN(dir, "timeout", "20", "./prog", "--input", "x.idx", "--labels", "fifo");
    expect_err(&r, 2, "fifo: not a regular file but a FIFO", "--labels FIFO");
    r = RUN(dir, "timeout", "20", "./prog", "--input", "-");
    expect_status(&r, 2, "--input - (empty)");
    assert_null(strstr(r.err, "regular"));
    assert_non_null(strstr(r.err, "(standard input)"));
    run_free(&r);

    nncc_model_free(m);
    remove_dir(dir);
}

/* ---- Names that are not C identifiers ------------------------------------- */

static void test_hostile_names(void **state)
{
    (void)state;
    nncc_model *m = small_model("9 lives */ \"of\" a\\model?\?=\n", "dense */ x", "y\"\\z");
    char *dir = make_dir();
    char model_path[600], pb[600];
    path_in(model_path, dir, "model.safetensors");
    assert_int_equal(nncc_save(m, model_path), NNCC_OK);
    /* No -o: the files are named after the model, made an identifier. */
    struct run r = RUN(dir, NNCC, "compile", model_path, "--emit", "c");
    expect_status(&r, 0, "compile --emit c");
    assert_non_null(strstr(r.out, "m_9_lives_____of__a_model____.c"));
    run_free(&r);
    const char *c = "m_9_lives_____of__a_model____.c";
    RUN_OK(dir, "gcc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-c", c, "-o", "g.o");
    RUN_OK(dir, "clang", "-std=c11", "-Wall", "-Wextra", "-Werror", "-c", c, "-o", "c.o");
    /* and the program, whose help prints the name from a string literal */
    RUN_OK(dir, NNCC, "compile", model_path, "-o", "prog");
    r = RUN(dir, "./prog", "--help");
    expect_status(&r, 0, "--help");
    assert_non_null(strstr(r.out, "9 lives */ \"of\" a\\model?\?=\n"));
    run_free(&r);
    /* Regression: programs named like the support files written beside the
     * model's (-o deploy once overwrote deploy.h with the model's header). */
    static const char *const support_names[] = {"deploy", "deploy_main", "formats", "model"};
    for (int i = 0; i < 4; i++) {
        RUN_OK(dir, NNCC, "compile", model_path, "-o", support_names[i]);
        char prog[64];
        snprintf(prog, sizeof prog, "./%s", support_names[i]);
        r = RUN(dir, prog, "--help");
        expect_status(&r, 0, support_names[i]);
        run_free(&r);
    }
    (void)pb;
    nncc_model_free(m);
    remove_dir(dir);
}

/* ---- Training through the emitted C ---------------------------------------- */

static void test_train(void **state)
{
    (void)state;
    nncc_model *m = small_model("tiny", NULL, NULL);
    assert_int_equal(nncc_compile(m, .optimizer = nncc_adam(.learning_rate = 0.01f),
                                  .loss = NNCC_CATEGORICAL_CROSSENTROPY, .metrics = NNCC_ACCURACY),
                     NNCC_OK);
    char *dir = make_dir();
    char model_path[600], pb[600];
    path_in(model_path, dir, "model.safetensors");
    assert_int_equal(nncc_save(m, model_path), NNCC_OK);
    enum { N = 16, STEPS = 4 };
    struct nncc_array *x = nncc_array_new(NNCC_SHAPE(N, 32)), *y = nncc_array_new(NNCC_SHAPE(N, 8));
    for (int i = 0; i < N * 32; i++)
        x->data[i] = (float)((i * 7919) % 200) / 100.0f - 1.0f;
    for (int r = 0; r < N; r++)
        y->data[r * 8 + (r * 5) % 8] = 1;
    write_bytes(path_in(pb, dir, "x.raw"), x->data, sizeof(float) * N * 32);
    write_bytes(path_in(pb, dir, "y.raw"), y->data, sizeof(float) * N * 8);
    RUN_OK(dir, NNCC, "compile", model_path, "--emit", "c", "--train", "-o", "mt");
    build_driver(dir, "mt", "drv", "mt.c", NULL, true);
    char nb[16], sb[16];
    snprintf(nb, sizeof nb, "%d", N);
    snprintf(sb, sizeof sb, "%d", STEPS);
    RUN_OK(dir, "./drv", "train", "x.raw", "y.raw", nb, sb, "w.raw", "logs.raw");

    /* The library: the same steps (one batch per epoch, no shuffling). */
    nncc_history *h = nncc_fit(m, x, y, .batch_size = N, .epochs = STEPS, .no_shuffle = true);
    assert_non_null(h);
    size_t len;
    char *logs = nncc_read_file(path_in(pb, dir, "logs.raw"), &len);
    assert_int_equal(len, sizeof(float) * STEPS * 2);
    for (int k = 0; k < STEPS; k++) {
        float loss = ((float *)(void *)logs)[2 * k], acc = ((float *)(void *)logs)[2 * k + 1];
        printf("    step %d: loss %.7f (library %.7f), accuracy %.4f\n", k + 1, (double)loss,
               nncc_history_get(h, "loss", k), (double)acc);
        assert_true(fabs(loss - nncc_history_get(h, "loss", k)) < 1e-5);
        assert_true(fabs(acc - nncc_history_get(h, "accuracy", k)) < 1e-6);
    }
    free(logs);
    char *w = nncc_read_file(path_in(pb, dir, "w.raw"), &len);
    assert_non_null(w);
    int64_t off = 0;
    for (int l = 0; l < nncc_model_num_layers(m); l++) {
        nncc_layer *layer = nncc_model_layer(m, l);
        for (int k = 0; k < nncc_layer_num_weights(layer); k++) {
            struct nncc_shape s = nncc_layer_weight_shape(layer, k);
            int64_t count = 1;
            for (int i = 0; i < s.rank; i++)
                count *= s.dim[i];
            float *lib = malloc(sizeof *lib * (size_t)count);
            assert_int_equal(nncc_get_weights(layer, k, lib, count), NNCC_OK);
            assert_true((size_t)(off + count) * 4 <= len);
            expect_close((float *)(void *)w + off, lib, count, 1e-5,
                         nncc_layer_weight_name(layer, k));
            free(lib);
            off += (count + 15) / 16 * 16;
        }
    }
    free(w);
    /* last, so that a warning does not hide the numbers above */
    RUN_OK(dir, "gcc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-c", "mt.c", "-o", "g.o");
    RUN_OK(dir, "clang", "-std=c11", "-Wall", "-Wextra", "-Werror", "-c", "mt.c", "-o", "c.o");
    nncc_history_free(h);
    nncc_array_free(x);
    nncc_array_free(y);
    nncc_model_free(m);
    remove_dir(dir);
}

/* ---- --weights, the program's --scale, --cflags ------------------------------ */

/* Predictions of prog on input file `in` (extra: more arguments, or NULL),
 * compared with want. */
static void expect_prog(const char *dir, const char *prog, const char *in, const char *extra1,
                        const char *extra2, const struct nncc_array *want, const char *what)
{
    struct run r = extra1 ? RUN(dir, prog, "--input", in, "--output", "y.npy", extra1, extra2)
                          : RUN(dir, prog, "--input", in, "--output", "y.npy");
    expect_status(&r, 0, what);
    run_free(&r);
    char pb[600];
    struct nncc_array *got = nncc_load_npy(path_in(pb, dir, "y.npy"));
    assert_non_null(got);
    assert_int_equal(nncc_array_size(got), nncc_array_size(want));
    expect_close(got->data, want->data, nncc_array_size(want), 1e-6, what);
    nncc_array_free(got);
}

/* The largest |a − b| of two arrays of the same size. */
static double max_diff(const struct nncc_array *a, const struct nncc_array *b)
{
    double d = 0;
    for (int64_t i = 0; i < nncc_array_size(a); i++)
        d = fmax(d, fabs((double)a->data[i] - (double)b->data[i]));
    return d;
}

static void test_options(void **state)
{
    (void)state;
    nncc_model *m = small_model(NULL, NULL, NULL);
    char *dir = make_dir();
    char model_path[600], w_path[600], pb[600];
    path_in(model_path, dir, "model.safetensors");
    path_in(w_path, dir, "other.safetensors");
    enum { N = 7 };
    struct nncc_array *x = random_input(m, N);
    assert_int_equal(nncc_save_npy(path_in(pb, dir, "x.npy"), x), NNCC_OK);

    /* --weights: the saved model (weights A) compiled with other weights
     * (B, from nncc_save_weights) predicts as nncc_predict with B, and
     * far from A's predictions (so the option took effect). */
    assert_int_equal(nncc_save(m, model_path), NNCC_OK);
    struct nncc_array *want_a = nncc_predict(m, x);
    assert_int_equal(nncc_model_init_weights(m, 99), NNCC_OK);
    assert_int_equal(nncc_save_weights(m, w_path), NNCC_OK);
    struct nncc_array *want_b = nncc_predict(m, x);
    assert_non_null(want_a);
    assert_non_null(want_b);
    assert_true(max_diff(want_a, want_b) > 1e-3);
    RUN_OK(dir, NNCC, "compile", model_path, "-o", "pa");
    expect_prog(dir, "./pa", "x.npy", NULL, NULL, want_a, "without --weights");
    RUN_OK(dir, NNCC, "compile", model_path, "--weights", "other.safetensors", "-o", "pb");
    expect_prog(dir, "./pb", "x.npy", NULL, NULL, want_b, "--weights");
    /* a weights file that does not fit the model: exit 1, naming the file */
    nncc_model *other = nncc_sequential(NNCC_LAYERS(nncc_dense_layer(
        .units = 3, .input_shape = NNCC_SHAPE(4))));
    assert_non_null(other);
    assert_int_equal(nncc_save_weights(other, path_in(pb, dir, "misfit.safetensors")), NNCC_OK);
    nncc_model_free(other);
    struct run r = RUN(dir, NNCC, "compile", model_path, "--weights", "misfit.safetensors", "-o",
                       "pm");
    expect_status(&r, 1, "--weights misfit.safetensors");
    assert_non_null(strstr(r.err, "misfit.safetensors"));
    run_free(&r);

    /* The program's --scale multiplies the input it reads: float input
     * by 0.5 (exact), and IDX bytes by 1 instead of the default 1/255. */
    struct nncc_array *xs = nncc_array_new(x->shape);
    assert_non_null(xs);
    for (int64_t i = 0; i < nncc_array_size(x); i++)
        xs->data[i] = x->data[i] * 0.5f;
    struct nncc_array *want_s = nncc_predict(m, xs);
    assert_non_null(want_s);
    assert_true(max_diff(want_s, want_b) > 1e-4);
    expect_prog(dir, "./pb", "x.npy", "--scale", "0.5", want_s, "--scale 0.5");
    unsigned char idx[12 + N * 32] = {0, 0, 0x08, 2, 0, 0, 0, N, 0, 0, 0, 32};
    for (int i = 0; i < N * 32; i++) {
        idx[12 + i] = (unsigned char)(i * 29 % 7);
        xs->data[i] = (float)idx[12 + i];
    }
    write_bytes(path_in(pb, dir, "x.idx"), idx, sizeof idx);
    struct nncc_array *want_u = nncc_predict(m, xs);
    assert_non_null(want_u);
    expect_prog(dir, "./pb", "x.idx", "--scale", "1", want_u, "IDX --scale 1");
    r = RUN(dir, "./pb", "--input", "x.npy", "--scale", "half");
    expect_status(&r, 2, "--scale half");
    assert_non_null(strstr(r.err, "--scale needs a number, got 'half'"));
    run_free(&r);

    /* --cflags reach the compiler: a -D and an -include of a header that,
     * when the macro is defined, makes the program say so on stderr; the
     * predictions are unchanged.  Without --cflags, no message. */
    static const char hook[] = "#ifdef NNCC_TEST_HOOK\n#include <stdio.h>\n"
                               "__attribute__((constructor)) static void nncc_test_hook(void)\n"
                               "{ fprintf(stderr, \"hook %d\\n\", NNCC_TEST_HOOK); }\n#endif\n";
    write_bytes(path_in(pb, dir, "hook.h"), hook, sizeof hook - 1);
    char cflags[700];
    snprintf(cflags, sizeof cflags, "-O1 -DNNCC_TEST_HOOK=417 -include %s", pb);
    RUN_OK(dir, NNCC, "compile", model_path, "--weights", "other.safetensors", "--cflags", cflags,
           "-o", "ph");
    r = RUN(dir, "./ph", "--input", "x.npy", "--output", "y.npy");
    expect_status(&r, 0, "built with --cflags");
    assert_non_null(strstr(r.err, "hook 417\n"));
    run_free(&r);
    expect_prog(dir, "./ph", "x.npy", NULL, NULL, want_b, "built with --cflags");
    r = RUN(dir, "./pb", "--input", "x.npy", "--output", "y.npy");
    expect_status(&r, 0, "built without --cflags");
    assert_null(strstr(r.err, "hook"));
    run_free(&r);
    /* a flag the compiler refuses: exit 1 with the compiler's message */
    r = RUN(dir, NNCC, "compile", model_path, "--cflags", "-O2 -fnncc-no-such-flag", "-o", "pf");
    expect_status(&r, 1, "--cflags -fnncc-no-such-flag");
    assert_non_null(strstr(r.err, "-fnncc-no-such-flag"));
    assert_int_equal(access(path_in(pb, dir, "pf"), F_OK), -1); /* no program */
    run_free(&r);

    nncc_array_free(x);
    nncc_array_free(xs);
    nncc_array_free(want_a);
    nncc_array_free(want_b);
    nncc_array_free(want_s);
    nncc_array_free(want_u);
    nncc_model_free(m);
    remove_dir(dir);
}

/* ---- --threads and usage errors -------------------------------------------- */

static void test_threads_and_usage(void **state)
{
    (void)state;
    char *dir = make_dir();
    const char *file = EXAMPLES "seed_functional.c";
    RUN_OK(dir, NNCC, "compile", file, "--threads", "-o", "pt");
    assert_true(check_ldd(dir, "./pt", true)); /* the OpenMP runtime, and only with --threads */
    RUN_OK(dir, NNCC, "compile", file, "--emit", "lib", "-o", "libx.a");
    struct stat st;
    char pb[600];
    assert_int_equal(stat(path_in(pb, dir, "libx.a"), &st), 0);
    assert_int_equal(stat(path_in(pb, dir, "x.h"), &st), 0);
    static const char *const bad[][6] = {
        {"compile", NULL},
        {"compile", "seed.c", "--emit", "dll", NULL},
        {"compile", "seed.c", "--batch", "0", NULL},
        {"compile", "seed.c", "--name", "3x", NULL},
        {"compile", "seed.c", "--train", NULL},
        {"compile", "seed.c", "--bogus", NULL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        const char *argv[8] = {NNCC};
        for (int k = 0; bad[i][k]; k++)
            argv[k + 1] = bad[i][k];
        struct run r = run_argv(dir, argv);
        expect_status(&r, 2, bad[i][2] ? bad[i][2] : "(no file)");
        run_free(&r);
    }
    /* --train needs a compiled model */
    struct run r = RUN(dir, NNCC, "compile", file, "--emit", "c", "--train");
    expect_status(&r, 1, "--train, uncompiled");
    assert_non_null(strstr(r.err, "not compiled"));
    run_free(&r);
    remove_dir(dir);
}

int main(int argc, char **argv)
{
    if (argc > 1) {
        example = argv[1];
        const struct CMUnitTest tests[] = {cmocka_unit_test(test_example)};
        return cmocka_run_group_tests(tests, NULL, NULL);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_program_inputs),
        cmocka_unit_test(test_program_streams),
        cmocka_unit_test(test_hostile_names),
        cmocka_unit_test(test_train),
        cmocka_unit_test(test_threads_and_usage),
        cmocka_unit_test(test_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
