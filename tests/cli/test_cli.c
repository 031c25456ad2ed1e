/*
 * test_cli.c — the `nncc` command (cli/main.c), run as a child process.
 *
 * Every test runs the built NNCC_BINARY_DIR/nncc with fork() and execv() (an
 * argv array, no shell), captures its stdout and stderr separately and checks
 * the exit status (0 success, 1 model or input error, 2 usage error) and the
 * text: --version and the help texts; usage errors; `nncc summary` on the
 * examples, byte for byte against the real-Keras summaries in tests/expected
 * (then the planned inference workspace, a line of nncc's own);
 * `nncc graph` as DOT and as IR text; and model files written to a per-test
 * mkdtemp() folder: one that does not compile (the diagnostic must name the
 * user's file, line and column, under the line the user wrote), type
 * mistakes refused at compile time, a warning shown, an entry that crashes
 * (the signal named, exit 1), an entry that is a variable, files that are
 * neither C nor a model file, one without the entry, one whose entry fails
 * with a shape error, one that includes a header next to it, and NNCC_DUMP;
 * and damaged entries in a private JIT cache (rebuilt, never loaded).  The
 * children share the build's test cache ($XDG_CACHE_HOME, set by CTest), so
 * only files the tests write are compiled on every run.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "include/nncc.h"

extern char **environ;

#define NNCC NNCC_BINARY_DIR "/nncc"
#define EXAMPLES NNCC_SOURCE_DIR "/examples/"
#define EXPECTED NNCC_SOURCE_DIR "/tests/expected/"

/* ---- Running nncc ------------------------------------------------------ */

struct buf {
    char *s;
    size_t len, cap;
};

static void buf_add(struct buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 1024;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->s, cap);
        assert_non_null(p);
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

struct run {
    int status; /* exit status, or 128 + signal */
    char *out;  /* stdout, NUL-terminated */
    char *err;  /* stderr, NUL-terminated */
};

static void run_free(struct run *r)
{
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}

/* Runs nncc with the NULL-terminated arguments `args` (argv[1]…) in folder
 * `cwd` (NULL: this process's), stdin from /dev/null. */
static struct run run_in(const char *cwd, const char *const *args)
{
    const char *argv[32];
    int argc = 0;
    argv[argc++] = NNCC;
    for (; *args; args++) {
        assert_true(argc < 31);
        argv[argc++] = *args;
    }
    argv[argc] = NULL;

    int po[2], pe[2];
    assert_int_equal(pipe(po), 0);
    assert_int_equal(pipe(pe), 0);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* Only async-signal-safe calls between fork() and exec. */
        int in = open("/dev/null", O_RDONLY);
        if (in < 0 || dup2(in, 0) < 0 || dup2(po[1], 1) < 0 || dup2(pe[1], 2) < 0)
            _exit(126);
        close(in);
        close(po[0]);
        close(po[1]);
        close(pe[0]);
        close(pe[1]);
        if (cwd && chdir(cwd) != 0)
            _exit(126);
        execve(NNCC, (char *const *)argv, environ);
        static const char msg[] = "test_cli: cannot execute " NNCC "\n";
        ssize_t w = write(2, msg, sizeof msg - 1);
        (void)w;
        _exit(127);
    }
    close(po[1]);
    close(pe[1]);

    struct buf out = {0}, err = {0};
    buf_add(&out, "", 0);
    buf_add(&err, "", 0);
    struct pollfd fds[2] = {{.fd = po[0], .events = POLLIN}, {.fd = pe[0], .events = POLLIN}};
    int open_fds = 2;
    while (open_fds > 0) {
        if (poll(fds, 2, -1) < 0) {
            assert_int_equal(errno, EINTR);
            continue;
        }
        for (int i = 0; i < 2; i++) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            char chunk[4096];
            ssize_t n = read(fds[i].fd, chunk, sizeof chunk);
            if (n > 0) {
                buf_add(i == 0 ? &out : &err, chunk, (size_t)n);
            } else if (n == 0 || errno != EINTR) {
                close(fds[i].fd);
                fds[i].fd = -1;
                open_fds--;
            }
        }
    }
    int ws;
    while (waitpid(pid, &ws, 0) < 0)
        assert_int_equal(errno, EINTR);
    struct run r = {
        .status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + (WIFSIGNALED(ws) ? WTERMSIG(ws) : 0),
        .out = out.s,
        .err = err.s,
    };
    return r;
}

#define RUN(...) run_in(NULL, (const char *const[]){__VA_ARGS__, NULL})
#define RUN_IN(cwd, ...) run_in((cwd), (const char *const[]){__VA_ARGS__, NULL})

/* Whether nncc exited with `status`; if not, shows what it printed. */
static bool status_is(const struct run *r, int status, const char *what)
{
    if (r->status == status)
        return true;
    fprintf(stderr, "---- %s: stdout:\n%s---- stderr:\n%s----\n", what, r->out, r->err);
    return false;
}

/* Whether `text` contains `part`; if not, shows the text. */
static bool has(const char *text, const char *part, const char *what)
{
    if (text && strstr(text, part))
        return true;
    fprintf(stderr, "---- %s:\n%s----\n", what, text ? text : "(null)");
    return false;
}

/* Macros, so that a failure reports the line of the check. */
#define expect_status(r, st, what)                                                    \
    do {                                                                              \
        if (!status_is((r), (st), (what)))                                            \
            fail_msg("%s: exit status %d, expected %d", (what), (r)->status, (st));   \
    } while (0)
#define expect_contains(text, part, what)                                             \
    do {                                                                              \
        if (!has((text), (part), (what)))                                             \
            fail_msg("%s does not contain \"%s\"", (what), (part));                   \
    } while (0)

static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* ---- Files ------------------------------------------------------------- */

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot read %s: %s", path, strerror(errno));
    struct buf b = {0};
    buf_add(&b, "", 0);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        buf_add(&b, chunk, n);
    fclose(f);
    return b.s;
}

static void write_text(const char *dir, const char *name, const char *text)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f)
        fail_msg("cannot write %s: %s", path, strerror(errno));
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

static void rm_rf(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (d) {
            struct dirent *e;
            while ((e = readdir(d)) != NULL) {
                if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                    continue;
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

/* Per-test fixture: a fresh temporary folder for model files. */
struct tmp {
    char dir[512];
    char path[1024]; /* scratch for tmp_path() */
};

static int make_tmp(void **state, const char *template_name)
{
    struct tmp *t = calloc(1, sizeof *t);
    if (!t)
        return -1;
    const char *base = getenv("TMPDIR");
    snprintf(t->dir, sizeof t->dir, "%s/%s", base && base[0] ? base : "/tmp", template_name);
    if (!mkdtemp(t->dir)) {
        free(t);
        return -1;
    }
    *state = t;
    return 0;
}

static int setup(void **state) { return make_tmp(state, "nncc-test-cli-XXXXXX"); }

/* A folder whose name has a space in it: paths reach the compiler unquoted. */
static int setup_space(void **state) { return make_tmp(state, "nncc test cli XXXXXX"); }

static int teardown(void **state)
{
    struct tmp *t = *state;
    rm_rf(t->dir);
    free(t);
    return 0;
}

static const char *tmp_path(struct tmp *t, const char *name)
{
    snprintf(t->path, sizeof t->path, "%s/%s", t->dir, name);
    return t->path;
}

/* ---- Version and help --------------------------------------------------- */

static void test_version(void **state)
{
    (void)state;
    struct run r = RUN("--version");
    expect_status(&r, 0, "nncc --version");
    assert_string_equal(r.out, "nncc " NNCC_VERSION_STRING "\n");
    assert_string_equal(r.out, "nncc 0.1.0\n");
    assert_string_equal(r.err, "");
    run_free(&r);
}

static void test_help(void **state)
{
    (void)state;
    const char *forms[] = {"--help", "-h", "help"};
    for (size_t i = 0; i < sizeof forms / sizeof *forms; i++) {
        struct run r = RUN(forms[i]);
        expect_status(&r, 0, forms[i]);
        assert_true(starts_with(r.out, "usage: nncc"));
        expect_contains(r.out, "summary", "nncc --help");
        expect_contains(r.out, "graph", "nncc --help");
        assert_string_equal(r.err, "");
        run_free(&r);
    }
}

static void test_command_help(void **state)
{
    (void)state;
    struct run r = RUN("summary", "--help");
    expect_status(&r, 0, "nncc summary --help");
    assert_true(starts_with(r.out, "usage: nncc summary FILE.c"));
    expect_contains(r.out, "--entry", "nncc summary --help");
    assert_string_equal(r.err, "");
    char *summary_help = r.out;
    r.out = NULL;
    run_free(&r);

    r = RUN("help", "summary");
    expect_status(&r, 0, "nncc help summary");
    assert_string_equal(r.out, summary_help);
    run_free(&r);

    /* Help wins over everything else on the line, even a missing file. */
    r = RUN("summary", "/nonexistent/model.c", "-h");
    expect_status(&r, 0, "nncc summary FILE -h");
    assert_string_equal(r.out, summary_help);
    run_free(&r);
    free(summary_help);

    r = RUN("graph", "--help");
    expect_status(&r, 0, "nncc graph --help");
    assert_true(starts_with(r.out, "usage: nncc graph FILE.c"));
    expect_contains(r.out, "--ir", "nncc graph --help");
    assert_string_equal(r.err, "");
    char *graph_help = r.out;
    r.out = NULL;
    run_free(&r);

    r = RUN("help", "graph");
    expect_status(&r, 0, "nncc help graph");
    assert_string_equal(r.out, graph_help);
    run_free(&r);
    free(graph_help);
}

/* ---- Usage errors: exit 2, a message on stderr, nothing on stdout ------- */

/* Whether nncc ARGS exits 2, prints nothing on stdout and `message` on
 * stderr; the command line goes to `what`. */
static bool usage_error_ok(const char *const *args, const char *message, char *what, size_t size)
{
    snprintf(what, size, "nncc");
    for (const char *const *a = args; *a; a++) {
        strncat(what, " ", size - strlen(what) - 1);
        strncat(what, *a, size - strlen(what) - 1);
    }
    struct run r = run_in(NULL, args);
    bool ok = status_is(&r, 2, what) && has(r.err, message, what);
    if (ok && r.out[0]) {
        fprintf(stderr, "---- %s: stdout:\n%s----\n", what, r.out);
        ok = false;
    }
    run_free(&r);
    return ok;
}

#define USAGE_ERROR(message, ...)                                                      \
    do {                                                                               \
        char what_[512];                                                               \
        if (!usage_error_ok((const char *const[]){__VA_ARGS__, NULL}, (message), what_, \
                            sizeof what_))                                             \
            fail_msg("%s: not a usage error (exit 2, nothing on stdout) saying \"%s\"", \
                     what_, (message));                                                \
    } while (0)

static void test_usage_errors(void **state)
{
    (void)state;
    char what[512];
    if (!usage_error_ok((const char *const[]){NULL}, "usage: nncc", what, sizeof what))
        fail_msg("nncc without arguments: not a usage error");
    USAGE_ERROR("unknown command 'frobnicate'", "frobnicate");
    USAGE_ERROR("unknown option '--frobnicate'", "--frobnicate");
    USAGE_ERROR("unknown command 'frobnicate'", "help", "frobnicate");
    USAGE_ERROR("unknown option '--bogus'", "summary", EXAMPLES "seed_cnn.c", "--bogus");
    USAGE_ERROR("unknown option '--ir'", "summary", EXAMPLES "seed_cnn.c", "--ir");
    USAGE_ERROR("missing FILE.c", "summary");
    USAGE_ERROR("missing FILE.c", "graph", "--ir");
    USAGE_ERROR("one FILE.c only", "summary", EXAMPLES "seed_cnn.c", EXAMPLES "seed_sequential.c");
    USAGE_ERROR("'--entry' needs a function name", "summary", EXAMPLES "seed_cnn.c", "--entry");
    USAGE_ERROR("'--entry' needs a function name", "graph", EXAMPLES "seed_cnn.c", "--entry");
    USAGE_ERROR("non-empty function name", "summary", EXAMPLES "seed_cnn.c", "--entry=");
}

/* The hint after a usage error names a command that exists. */
static void test_usage_hint(void **state)
{
    (void)state;
    USAGE_ERROR("\nTry 'nncc --help'.\n", "frobnicate");
    USAGE_ERROR("\nTry 'nncc summary --help'.\n", "summary");
    USAGE_ERROR("\nTry 'nncc graph --help'.\n", "graph", "--bogus");
}

/* ---- Summaries and graphs of the examples ------------------------------- */

/* `nncc summary FILE.c` prints Keras' table (want), then one line with the
 * workspace the memory plan gives inference for one sample: a positive
 * number of bytes, a multiple of 64 (regions are 16-float aligned). */
static bool summary_matches(const char *out, const char *want)
{
    size_t n = strlen(want);
    if (strncmp(out, want, n) != 0)
        return false;
    const char *line = out + n, *prefix = "Planned workspace (inference, batch 1): ";
    if (strncmp(line, prefix, strlen(prefix)) != 0)
        return false;
    char *end;
    long long bytes = strtoll(line + strlen(prefix), &end, 10);
    return bytes > 0 && bytes % 64 == 0 && strcmp(end, " bytes\n") == 0;
}

static void expect_summary(const char *example)
{
    char file[1024], expected[1024];
    snprintf(file, sizeof file, EXAMPLES "%s.c", example);
    snprintf(expected, sizeof expected, EXPECTED "summary_%s.txt", example);
    struct run r = RUN("summary", file);
    expect_status(&r, 0, file);
    char *want = read_text(expected);
    if (!summary_matches(r.out, want)) {
        fprintf(stderr, "---- expected (%s):\n%s---- got:\n%s----\n", expected, want, r.out);
        fail_msg("nncc summary %s differs from %s", file, expected);
    }
    assert_string_equal(r.err, "");
    free(want);
    run_free(&r);
}

static void test_summary_examples(void **state)
{
    (void)state;
    expect_summary("seed_cnn");
    expect_summary("seed_sequential");
    expect_summary("seed_functional");
    expect_summary("inception_block");
}

/* seed_cnn's inference, as codegen plans it: the conv, its bias, ReLU and
 * 2x2 max pooling run as one fused kernel (conv_pool) writing only the
 * (16, 16, 16) pooled value: 4096 floats (the (32, 32, 16) activations,
 * 16384 floats more before, are never stored). */
static void test_summary_planned_workspace(void **state)
{
    (void)state;
    struct run r = RUN("summary", EXAMPLES "seed_cnn.c");
    expect_status(&r, 0, "nncc summary seed_cnn.c");
    expect_contains(r.out, "_\nPlanned workspace (inference, batch 1): 16384 bytes\n",
                    "nncc summary seed_cnn.c");
    run_free(&r);
}

static void test_summary_entry_option_forms(void **state)
{
    (void)state;
    char *want = read_text(EXPECTED "summary_seed_cnn.txt");
    struct run r = RUN("summary", "--entry", "model", EXAMPLES "seed_cnn.c");
    expect_status(&r, 0, "nncc summary --entry model FILE");
    assert_true(summary_matches(r.out, want));
    run_free(&r);
    r = RUN("summary", EXAMPLES "seed_cnn.c", "--entry=model");
    expect_status(&r, 0, "nncc summary FILE --entry=model");
    assert_true(summary_matches(r.out, want));
    run_free(&r);
    free(want);
}

static void test_graph_dot(void **state)
{
    (void)state;
    struct run r = RUN("graph", EXAMPLES "seed_cnn.c");
    expect_status(&r, 0, "nncc graph seed_cnn.c");
    if (!starts_with(r.out, "digraph \"model\" {\n") || !ends_with(r.out, "}\n")) {
        fprintf(stderr, "---- stdout:\n%s----\n", r.out);
        fail_msg("nncc graph: not a DOT digraph named \"model\"");
    }
    expect_contains(r.out, "label=\"conv2d/", "nncc graph seed_cnn.c");
    expect_contains(r.out, "->", "nncc graph seed_cnn.c");
    expect_contains(r.out, "(None, 4)", "nncc graph seed_cnn.c");
    assert_string_equal(r.err, "");
    run_free(&r);

    r = RUN("graph", EXAMPLES "inception_block.c");
    expect_status(&r, 0, "nncc graph inception_block.c");
    assert_true(starts_with(r.out, "digraph \"inception_block\" {\n"));
    assert_true(ends_with(r.out, "}\n"));
    run_free(&r);
}

static void test_graph_ir(void **state)
{
    (void)state;
    struct run r = RUN("graph", "--ir", EXAMPLES "seed_cnn.c");
    expect_status(&r, 0, "nncc graph --ir seed_cnn.c");
    if (!starts_with(r.out, "program:")) {
        fprintf(stderr, "---- stdout:\n%s----\n", r.out);
        fail_msg("nncc graph --ir: does not start with \"program:\"");
    }
    expect_contains(r.out, "conv2d", "nncc graph --ir");
    expect_contains(r.out, "(None, 64, 64, 3)", "nncc graph --ir");
    assert_true(ends_with(r.out, "\n"));
    assert_string_equal(r.err, "");
    run_free(&r);
}

/* nncc graph --after PASS: the program at that stage of the pipeline, the
 * fusion groups as DOT clusters; --train for the training step. */
static void test_graph_after(void **state)
{
    (void)state;
    struct run r = RUN("graph", EXAMPLES "seed_cnn.c", "--after", "shapes");
    expect_status(&r, 0, "nncc graph --after shapes");
    assert_true(starts_with(r.out, "digraph \"model, inference after shapes\" {\n"));
    assert_null(strstr(r.out, "subgraph cluster_")); /* nothing fused yet */
    run_free(&r);
    r = RUN("graph", EXAMPLES "seed_cnn.c", "--after=fuse");
    expect_status(&r, 0, "nncc graph --after fuse");
    expect_contains(r.out, "label=\"conv_pool\"", "nncc graph --after fuse");
    expect_contains(r.out, "label=\"bias_act\"", "nncc graph --after fuse");
    run_free(&r);
    r = RUN("graph", "--ir", EXAMPLES "seed_cnn.c", "--after", "memplan");
    expect_status(&r, 0, "nncc graph --ir --after memplan");
    expect_contains(r.out, ": conv_pool, + %", "nncc graph --ir --after memplan");
    expect_contains(r.out, "parallel over rows", "nncc graph --ir --after memplan");
    expect_contains(r.out, "memory plan: fixed arena", "nncc graph --ir --after memplan");
    run_free(&r);
    USAGE_ERROR("unknown pass 'emit'", "graph", EXAMPLES "seed_cnn.c", "--after", "emit");
    USAGE_ERROR("--after autodiff needs --train", "graph", EXAMPLES "seed_cnn.c", "--after",
                "autodiff");
    USAGE_ERROR("--train needs --after PASS", "graph", EXAMPLES "seed_cnn.c", "--train");
    /* An entry that does not compile its model has no training step. */
    r = RUN("graph", EXAMPLES "seed_cnn.c", "--after", "autodiff", "--train");
    expect_status(&r, 1, "nncc graph --train on an uncompiled model");
    expect_contains(r.err, "is not compiled", "nncc graph --train");
    run_free(&r);
}

/* NNCC_DUMP=shapes: the IR after the shapes pass on stderr, the summary
 * unchanged on stdout. */
static void test_dump_env(void **state)
{
    (void)state;
    assert_int_equal(setenv("NNCC_DUMP", "shapes", 1), 0);
    struct run r = RUN("summary", EXAMPLES "seed_cnn.c");
    unsetenv("NNCC_DUMP");
    expect_status(&r, 0, "NNCC_DUMP=shapes nncc summary seed_cnn.c");
    expect_contains(r.err, "after pass shapes", "stderr with NNCC_DUMP=shapes");
    expect_contains(r.err, "program:", "stderr with NNCC_DUMP=shapes");
    char *want = read_text(EXPECTED "summary_seed_cnn.txt");
    assert_true(summary_matches(r.out, want));
    free(want);
    run_free(&r);
}

/* ---- Model files that fail ----------------------------------------------- */

static void test_compile_error(void **state)
{
    struct tmp *t = *state;
    write_text(t->dir, "broken.c",
               "#include <nncc.h>\n"
               "nncc_model *model(void)\n"
               "{ int x = ; return NULL; }\n");
    const char *file = tmp_path(t, "broken.c");
    struct run r = RUN("summary", file);
    expect_status(&r, 1, "nncc summary broken.c");
    assert_string_equal(r.out, "");
    char where[1100];
    snprintf(where, sizeof where, "%s:3:", file); /* the user's file and line */
    expect_contains(r.err, where, "stderr of a file that does not compile");
    expect_contains(r.err, "does not compile", "stderr of a file that does not compile");
    run_free(&r);

    /* The same from inside its folder, named relatively. */
    r = RUN_IN(t->dir, "graph", "broken.c");
    expect_status(&r, 1, "nncc graph broken.c (relative)");
    assert_string_equal(r.out, "");
    expect_contains(r.err, "broken.c:3:", "stderr of a file that does not compile");
    expect_contains(r.err, "nncc: broken.c does not compile", "stderr");
    run_free(&r);
}

/* An error inside a layer call's macro is reported at the user's own line
 * and column, under the line the user wrote (the file is compiled as
 * written, not as preprocessed text). */
static void test_syntax_error_at_user_column(void **state)
{
    struct tmp *t = *state;
    write_text(t->dir, "syntax_error.c",
               "#include <nncc.h>\n"
               "nncc_model *model(void)\n"
               "{\n"
               "    nncc_tensor *x = nncc_input(nncc_graph_new(), NNCC_SHAPE(4));\n"
               "    nncc_tensor *y = nncc_dense(x, .units = 3, .activation = NNCC_RELU) +;\n"
               "    return nncc_model_new(x, y);\n"
               "}\n");
    struct run r = RUN_IN(t->dir, "summary", "syntax_error.c");
    expect_status(&r, 1, "nncc summary syntax_error.c");
    assert_string_equal(r.out, "");
    expect_contains(r.err, "syntax_error.c:5:74: error: expected expression", "stderr");
    expect_contains(r.err, "nncc_dense(x, .units = 3, .activation = NNCC_RELU) +;\n", "stderr");
    expect_contains(r.err, "nncc: syntax_error.c does not compile\n", "stderr");
    run_free(&r);
}

/* Keras habits that C would compile into a wrong model are compile errors,
 * with the compiler's message at the user's line. */
static void test_type_mistakes_refused(void **state)
{
    struct tmp *t = *state;
    write_text(t->dir, "relu.c",
               "#include <nncc.h>\n"
               "nncc_model *model(void)\n"
               "{\n"
               "    nncc_tensor *x = nncc_input(nncc_graph_new(), NNCC_SHAPE(4));\n"
               "    nncc_tensor *y = nncc_dense(x, .units = 3, .activation = \"relu\");\n"
               "    return nncc_model_new(x, y);\n"
               "}\n");
    struct run r = RUN_IN(t->dir, "summary", "relu.c");
    expect_status(&r, 1, "nncc summary relu.c (.activation = \"relu\")");
    assert_string_equal(r.out, "");
    expect_contains(r.err, "relu.c:5:62: error: incompatible ", "stderr"); /* gcc: types; clang: pointer to integer conversion */
    expect_contains(r.err, "nncc: relu.c does not compile\n", "stderr");
    run_free(&r);

    write_text(t->dir, "fit.c",
               "#include <nncc.h>\n"
               "void train(nncc_model *m, struct nncc_array *x, struct nncc_array *y)\n"
               "{\n"
               "    nncc_fit(m, x->data, y->data);\n"
               "}\n"
               "nncc_model *model(void) { return NULL; }\n");
    r = RUN_IN(t->dir, "graph", "fit.c");
    expect_status(&r, 1, "nncc graph fit.c (nncc_fit(m, x->data, y->data))");
    expect_contains(r.err, "fit.c:4:", "stderr");
    expect_contains(r.err, "incompatible-pointer-types]", "stderr");
    expect_contains(r.err, "nncc: fit.c does not compile\n", "stderr");
    run_free(&r);

    write_text(t->dir, "undeclared.c",
               "#include <nncc.h>\n"
               "nncc_model *model(void) { return nncc_conv(NULL); }\n");
    r = RUN_IN(t->dir, "emit-c", "undeclared.c");
    expect_status(&r, 1, "nncc emit-c undeclared.c (a function nncc does not have)");
    expect_contains(r.err, "undeclared.c:2:34: error: implicit declaration of function", "stderr");
    run_free(&r);
}

/* A file that compiles with a warning: the warning reaches stderr, at the
 * user's line, also when the object comes from the cache. */
static void test_warning_shown(void **state)
{
    struct tmp *t = *state;
    write_text(t->dir, "warn.c",
               "#include <nncc.h>\n"
               "nncc_model *model(void)\n"
               "{\n"
               "    int unused;\n"
               "    nncc_tensor *x = nncc_input(nncc_graph_new(), NNCC_SHAPE(4));\n"
               "    return nncc_model_new(x, nncc_dense(x, .units = 3));\n"
               "}\n");
    for (int pass = 0; pass < 2; pass++) { /* compiled, then a cache hit */
        struct run r = RUN_IN(t->dir, "summary", "warn.c");
        expect_status(&r, 0, "nncc summary warn.c");
        expect_contains(r.out, " dense (Dense)               (None, 3)                 15        ",
                        "summary of warn.c");
        expect_contains(r.err, "warn.c:4:9: warning: unused variable", "stderr of warn.c");
        run_free(&r);
    }
}

/* An entry that crashes: the command says so, naming the signal, and exits
 * 1 instead of dying without a word. */
static void test_entry_crashes(void **state)
{
    struct tmp *t = *state;
    write_text(t->dir, "crash.c",
               "#include <nncc.h>\n"
               "#include <stdlib.h>\n"
               "nncc_model *model(void)\n"
               "{\n"
               "    nncc_model **none = NULL;\n"
               "    return *none;\n"
               "}\n"
               "nncc_model *aborts(void) { abort(); }\n");
    const char *file = tmp_path(t, "crash.c");
    char want[1200];
    struct run r = RUN("summary", file);
    expect_status(&r, 1, "nncc summary crash.c");
    assert_string_equal(r.out, "");
    snprintf(want, sizeof want, "nncc: model() in %s crashed (SIGSEGV)\n", file);
    assert_string_equal(r.err, want);
    run_free(&r);

    r = RUN_IN(t->dir, "graph", "--entry", "aborts", "crash.c");
    expect_status(&r, 1, "nncc graph --entry aborts crash.c");
    assert_string_equal(r.err, "nncc: aborts() in crash.c crashed (SIGABRT)\n");
    run_free(&r);

    r = RUN_IN(t->dir, "compile", "crash.c", "-o", "out");
    expect_status(&r, 1, "nncc compile crash.c");
    assert_string_equal(r.err, "nncc: model() in crash.c crashed (SIGSEGV)\n");
    run_free(&r);
}

/* `int model = 3;` links like a function: it is refused before the call. */
static void test_entry_is_variable(void **state)
{
    struct tmp *t = *state;
    write_text(t->dir, "variable.c", "int model = 3;\n");
    struct run r = RUN_IN(t->dir, "summary", "variable.c");
    expect_status(&r, 1, "nncc summary variable.c");
    assert_string_equal(r.out, "");
    assert_string_equal(r.err, "nncc: variable.c: `model` is a variable, not a function: define "
                               "`nncc_model *model(void)`\n");
    run_free(&r);
}

/* A file that is neither C nor a model file is not handed to the compiler. */
static void test_not_a_model_file(void **state)
{
    struct tmp *t = *state;
    write_text(t->dir, "data.npy", "\x93NUMPY\x01\x00");
    write_text(t->dir, "notes.txt", "int model = 3;\n");
    static const char *const names[] = {"data.npy", "notes.txt"};
    static const char *const cmds[] = {"summary", "graph", "emit-c", "bench", "compile"};
    for (int i = 0; i < 2; i++) {
        for (int c = 0; c < 5; c++) {
            struct run r = RUN_IN(t->dir, cmds[c], names[i]);
            char what[100], want[300];
            snprintf(what, sizeof what, "nncc %s %s", cmds[c], names[i]);
            expect_status(&r, 1, what);
            assert_string_equal(r.out, "");
            snprintf(want, sizeof want, "nncc: %s is neither a C file (FILE.c) nor a model file "
                     "(FILE.safetensors, written by nncc_save; FILE.onnx; Keras' FILE.h5 or FILE.keras)\n", names[i]);
            assert_string_equal(r.err, want);
            run_free(&r);
        }
        struct run r = RUN_IN(t->dir, "run", names[i]);
        expect_status(&r, 1, "nncc run on a file that is not C");
        char want[300];
        snprintf(want, sizeof want, "nncc run: %s is not a C file (FILE.c, with its main()) nor "
                 "a model file (FILE.safetensors, FILE.keras, FILE.h5, FILE.onnx)\n", names[i]);
        assert_string_equal(r.err, want);
        run_free(&r);
    }
}

/* graph and emit-c read a model file as summary does, rather than handing
 * it to the C compiler. */
static void test_graph_of_saved_model(void **state)
{
    struct tmp *t = *state;
    nncc_model *m = nncc_sequential(
        NNCC_LAYERS(nncc_dense_layer(.units = 2, .input_shape = NNCC_SHAPE(3))),
        .name = "saved_model");
    assert_non_null(m);
    assert_int_equal(nncc_save(m, tmp_path(t, "saved.safetensors")), NNCC_OK);
    nncc_model_free(m);
    struct run r = RUN_IN(t->dir, "graph", "--ir", "saved.safetensors");
    expect_status(&r, 0, "nncc graph --ir saved.safetensors");
    assert_true(starts_with(r.out, "program: 5 nodes, inputs: %0, outputs: %4\n"));
    assert_string_equal(r.err, "");
    run_free(&r);
    r = RUN_IN(t->dir, "emit-c", "saved.safetensors");
    expect_status(&r, 0, "nncc emit-c saved.safetensors");
    assert_true(starts_with(r.out, "/* Generated by nncc " NNCC_VERSION_STRING
                                   " for model \"saved_model\". */\n"));
    run_free(&r);
}

static const char other_src[] =
    "#include <nncc.h>\n"
    "nncc_model *other(void)\n"
    "{\n"
    "    return nncc_sequential(((nncc_layer *[]){\n"
    "        nncc_dense_layer(.units = 3, .input_shape = NNCC_SHAPE(5)),\n"
    "    }), 1, .name = \"other_model\");\n"
    "}\n";

static void test_entry(void **state)
{
    struct tmp *t = *state;
    write_text(t->dir, "other.c", other_src);
    const char *file = tmp_path(t, "other.c");

    struct run r = RUN("summary", file);
    expect_status(&r, 1, "nncc summary other.c (no model())");
    assert_string_equal(r.out, "");
    expect_contains(r.err, "model(void)", "stderr without the entry");
    expect_contains(r.err, "other.c", "stderr without the entry");
    run_free(&r);

    r = RUN("summary", file, "--entry", "missing_entry");
    expect_status(&r, 1, "nncc summary other.c --entry missing_entry");
    expect_contains(r.err, "missing_entry", "stderr without the entry");
    run_free(&r);

    r = RUN("summary", file, "--entry", "other");
    expect_status(&r, 0, "nncc summary other.c --entry other");
    assert_true(starts_with(r.out, "Model: \"other_model\"\n"));
    expect_contains(r.out, " dense (Dense)               (None, 3)                 18        ",
                    "summary of other.c");
    expect_contains(r.out, "Total params: 18 (72.00 Byte)\n", "summary of other.c");
    assert_string_equal(r.err, "");
    run_free(&r);

    r = RUN("graph", "--entry=other", "--ir", file);
    expect_status(&r, 0, "nncc graph --entry=other --ir other.c");
    assert_true(starts_with(r.out, "program:"));
    run_free(&r);
}

/* The entry returns NULL after a shape error: its message reaches stderr. */
static void test_entry_returns_null(void **state)
{
    struct tmp *t = *state;
    write_text(t->dir, "mismatch.c",
               "#include <nncc.h>\n"
               "nncc_model *model(void)\n"
               "{\n"
               "    nncc_graph *g = nncc_graph_new();\n"
               "    nncc_tensor *a = nncc_input(g, NNCC_SHAPE(4));\n"
               "    nncc_tensor *b = nncc_input(g, NNCC_SHAPE(5));\n"
               "    nncc_tensor *s = nncc_add(((nncc_tensor *[]){a, b}), 2);\n"
               "    return nncc_model_new_n(((nncc_tensor *[]){a, b}), 2,\n"
               "                            ((nncc_tensor *[]){s}), 1); /* frees g */\n"
               "}\n");

    /* The same mistake in this process gives the text to look for. */
    nncc_graph *g = nncc_graph_new();
    nncc_tensor *a = nncc_input(g, NNCC_SHAPE(4));
    nncc_tensor *b = nncc_input(g, NNCC_SHAPE(5));
    assert_null(nncc_add(((nncc_tensor *[]){a, b}), 2));
    assert_int_equal(nncc_last_status(), NNCC_ERR_SHAPE);
    char message[512];
    snprintf(message, sizeof message, "%s", nncc_last_error());
    assert_int_equal(nncc_graph_free(g), NNCC_OK);
    assert_true(message[0] != '\0');

    struct run r = RUN("summary", tmp_path(t, "mismatch.c"));
    expect_status(&r, 1, "nncc summary mismatch.c");
    assert_string_equal(r.out, "");
    expect_contains(r.err, message, "stderr after a shape error");
    expect_contains(r.err, "mismatch.c", "stderr after a shape error");
    run_free(&r);
}

/* An entry that returns NULL without recording an error. */
static void test_entry_returns_null_silently(void **state)
{
    struct tmp *t = *state;
    write_text(t->dir, "null.c",
               "#include <nncc.h>\n"
               "nncc_model *model(void) { return NULL; }\n");
    struct run r = RUN("graph", tmp_path(t, "null.c"));
    expect_status(&r, 1, "nncc graph null.c");
    assert_string_equal(r.out, "");
    expect_contains(r.err, "returned no model", "stderr for a NULL model");
    run_free(&r);
}

static void test_nonexistent_file(void **state)
{
    struct tmp *t = *state;
    const char *file = tmp_path(t, "no_such_model.c");
    struct run r = RUN("summary", file);
    expect_status(&r, 1, "nncc summary no_such_model.c");
    assert_string_equal(r.out, "");
    expect_contains(r.err, "cannot open", "stderr for a missing file");
    expect_contains(r.err, "no_such_model.c", "stderr for a missing file");
    run_free(&r);

    r = RUN("graph", file);
    expect_status(&r, 1, "nncc graph no_such_model.c");
    expect_contains(r.err, "cannot open", "stderr for a missing file");
    run_free(&r);
}

/* ---- Headers next to the model file -------------------------------------- */

static const char include_src[] =
    "#include <nncc.h>\n"
    "#include \"widths.h\"\n"
    "nncc_model *model(void)\n"
    "{\n"
    "    return nncc_sequential(((nncc_layer *[]){\n"
    "        nncc_dense_layer(.units = UNITS, .input_shape = NNCC_SHAPE(3)),\n"
    "    }), 1);\n"
    "}\n";

/* Whether `nncc summary FILE` (run in `cwd`) succeeds and prints `row`. */
static bool summary_has_row(const char *cwd, const char *file, const char *row)
{
    struct run r = RUN_IN(cwd, "summary", file);
    bool ok = status_is(&r, 0, file) && has(r.out, row, "summary of a model including widths.h");
    run_free(&r);
    return ok;
}

#define expect_units(cwd, file, row)                                                   \
    do {                                                                               \
        if (!summary_has_row((cwd), (file), (row)))                                    \
            fail_msg("nncc summary %s: no row \"%s\"", (file), (row));                 \
    } while (0)

static void test_include_next_to_file(void **state)
{
    struct tmp *t = *state;
    write_text(t->dir, "widths.h", "#define UNITS 7\n");
    write_text(t->dir, "with_header.c", include_src);
    const char *seven = " dense (Dense)               (None, 7)                 28        ";
    expect_units(NULL, tmp_path(t, "with_header.c"), seven);
    expect_units(t->dir, "with_header.c", seven); /* relative: -I. */
}

/* The cache must not serve an object built from an older header. */
static void test_include_change_recompiles(void **state)
{
    struct tmp *t = *state;
    write_text(t->dir, "widths.h", "#define UNITS 7\n");
    write_text(t->dir, "with_header.c", include_src);
    const char *file = tmp_path(t, "with_header.c");
    expect_units(NULL, file, " dense (Dense)               (None, 7)                 28        ");
    write_text(t->dir, "widths.h", "#define UNITS 9\n");
    if (!summary_has_row(NULL, file, " dense (Dense)               (None, 9)                 36        "))
        fail_msg("after widths.h changed from UNITS 7 to 9, nncc summary still used the old "
                 "object: the JIT cache key does not cover headers the model file includes");
}

/* Names of the <key>.so entries in folder `dir`, newline-separated, in a
 * malloc'd string. */
static char *list_objects(const char *dir)
{
    struct buf b = {0};
    buf_add(&b, "", 0);
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (ends_with(e->d_name, ".so")) {
            buf_add(&b, e->d_name, strlen(e->d_name));
            buf_add(&b, "\n", 1);
        }
    closedir(d);
    return b.s;
}

/* Overwrites file `to` with `len` bytes of file `from` (all of it when len
 * is -1). */
static void copy_prefix(const char *from, const char *to, long len)
{
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    assert_non_null(in);
    assert_non_null(out);
    int c;
    for (long i = 0; (len < 0 || i < len) && (c = getc(in)) != EOF; i++)
        putc(c, out);
    fclose(in);
    assert_int_equal(fclose(out), 0);
}

/* A damaged cache entry is rebuilt, never loaded: a truncated object
 * crashed every later `nncc summary` with SIGBUS, and another model's
 * object under seed_cnn's key made it print the other model. */
static void test_summary_damaged_cache(void **state)
{
    struct tmp *t = *state;
    char cache[1100], folder[1200], path[1500], other[1500];
    snprintf(cache, sizeof cache, "%s", tmp_path(t, "cache"));
    snprintf(folder, sizeof folder, "%s/nncc", cache);
    const char *saved = getenv("XDG_CACHE_HOME");
    char *saved_copy = saved ? strdup(saved) : NULL;
    setenv("XDG_CACHE_HOME", cache, 1);

    expect_summary("seed_cnn");
    char *cnn = list_objects(folder);
    assert_int_equal(strchr(cnn, '\n') - cnn, 67); /* one object: <64 hex>.so */
    snprintf(path, sizeof path, "%s/%.67s", folder, cnn);

    /* Truncated: rebuilt, with a note under NNCC_VERBOSE. */
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(truncate(path, st.st_size / 2), 0);
    setenv("NNCC_VERBOSE", "1", 1);
    struct run r = RUN("summary", EXAMPLES "seed_cnn.c");
    unsetenv("NNCC_VERBOSE");
    expect_status(&r, 0, "nncc summary seed_cnn.c, object truncated");
    expect_contains(r.err, "is bad (", "NNCC_VERBOSE=1 nncc summary seed_cnn.c");
    expect_contains(r.err, "rebuilding it", "NNCC_VERBOSE=1 nncc summary seed_cnn.c");
    run_free(&r);
    expect_summary("seed_cnn");

    /* Empty. */
    copy_prefix(path, path, 0);
    expect_summary("seed_cnn");

    /* Another model's object (and then with its hash file too). */
    expect_summary("seed_sequential");
    char *both = list_objects(folder);
    const char *seq = strcmp(both, cnn) == 0 ? NULL : both;
    if (seq && strncmp(seq, cnn, 67) == 0) seq += 68;
    assert_non_null(seq);
    snprintf(other, sizeof other, "%s/%.67s", folder, seq);
    copy_prefix(other, path, -1);
    expect_summary("seed_cnn");
    char hash[1600], other_hash[1600];
    snprintf(hash, sizeof hash, "%s.sha256", path);
    snprintf(other_hash, sizeof other_hash, "%s.sha256", other);
    copy_prefix(other, path, -1);
    copy_prefix(other_hash, hash, -1);
    expect_summary("seed_cnn");

    free(cnn);
    free(both);
    if (saved_copy) setenv("XDG_CACHE_HOME", saved_copy, 1);
    else unsetenv("XDG_CACHE_HOME");
    free(saved_copy);
}

/* Run with the folder "nncc test cli XXXXXX": a path with spaces. */
static void test_path_with_spaces(void **state)
{
    struct tmp *t = *state;
    write_text(t->dir, "widths.h", "#define UNITS 7\n");
    write_text(t->dir, "with header.c", include_src);
    expect_units(NULL, tmp_path(t, "with header.c"),
                 " dense (Dense)               (None, 7)                 28        ");
}

/* nncc run: builds FILE.c's program against nncc, passes the arguments,
 * and exits with the program's status; a second run is a cache hit. */
static const char run_src[] =
    "#include <nncc.h>\n"
    "#include <string.h>\n"
    "int main(int argc, char **argv)\n"
    "{\n"
    "    nncc_model *m = nncc_sequential(NNCC_LAYERS(\n"
    "        nncc_dense_layer(.units = 2, .input_shape = NNCC_SHAPE(3))));\n"
    "    float x[] = {1, 2, 3};\n"
    "    struct nncc_array *y = nncc_predict_rows(m, x, 1);\n"
    "    printf(\"argc=%d last=%s outputs=%lld\\n\", argc, argv[argc - 1],\n"
    "           (long long)y->shape.dim[1]);\n"
    "    nncc_array_free(y);\n"
    "    nncc_model_free(m);\n"
    "    return argc > 2 && strcmp(argv[2], \"fail\") == 0 ? 7 : 0;\n"
    "}\n";

static void test_run(void **state)
{
    struct tmp *t = *state;
    write_text(t->dir, "prog.c", run_src);
    const char *file = tmp_path(t, "prog.c");
    struct run r = RUN("run", file, "a", "b c");
    expect_status(&r, 0, "nncc run prog.c a 'b c'");
    assert_string_equal(r.out, "argc=3 last=b c outputs=2\n");
    run_free(&r);
    r = RUN("run", file, "x", "fail");
    expect_status(&r, 7, "nncc run prog.c x fail (the program's exit status)");
    run_free(&r);
    r = RUN("run");
    expect_status(&r, 2, "nncc run without a file");
    run_free(&r);
    write_text(t->dir, "bad.c", "int main(void) { return x; }\n");
    r = RUN("run", tmp_path(t, "bad.c"));
    expect_status(&r, 1, "nncc run bad.c");
    expect_contains(r.err, "does not compile", "stderr of nncc run bad.c");
    run_free(&r);
}

/* nncc emit-c prints the generated translation unit. */
static void test_emit_c(void **state)
{
    (void)state;
    struct run r = RUN("emit-c", NNCC_SOURCE_DIR "/examples/seed_cnn.c");
    expect_status(&r, 0, "nncc emit-c seed_cnn.c");
    expect_contains(r.out, "void nncc_forward(int n, const float *const *p", "emit-c output");
    expect_contains(r.out, "conv2d \"conv2d/conv2d\"", "emit-c kernel comment");
    expect_contains(r.out, "(n, 64, 64, 3)", "emit-c shape comment");
    run_free(&r);
    r = RUN("emit-c", "--help");
    expect_status(&r, 0, "nncc emit-c --help");
    run_free(&r);
}

int main(void)
{
    /* The children inherit the environment: keep them off the user's cache
     * and free of debugging output. */
    setenv("XDG_CACHE_HOME", NNCC_BINARY_DIR "/test-cache", 0);
    unsetenv("NNCC_DUMP");
    unsetenv("NNCC_VERBOSE");

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_command_help),
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_usage_hint),
        cmocka_unit_test(test_summary_examples),
        cmocka_unit_test(test_summary_planned_workspace),
        cmocka_unit_test(test_summary_entry_option_forms),
        cmocka_unit_test(test_graph_dot),
        cmocka_unit_test(test_graph_ir),
        cmocka_unit_test(test_graph_after),
        cmocka_unit_test(test_dump_env),
        cmocka_unit_test_setup_teardown(test_compile_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_syntax_error_at_user_column, setup, teardown),
        cmocka_unit_test_setup_teardown(test_type_mistakes_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_warning_shown, setup, teardown),
        cmocka_unit_test_setup_teardown(test_entry_crashes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_entry_is_variable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_a_model_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_graph_of_saved_model, setup, teardown),
        cmocka_unit_test_setup_teardown(test_entry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_entry_returns_null, setup, teardown),
        cmocka_unit_test_setup_teardown(test_entry_returns_null_silently, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nonexistent_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_include_next_to_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_include_change_recompiles, setup, teardown),
        cmocka_unit_test_setup_teardown(test_path_with_spaces, setup_space, teardown),
        cmocka_unit_test_setup_teardown(test_summary_damaged_cache, setup, teardown),
        cmocka_unit_test_setup_teardown(test_run, setup, teardown),
        cmocka_unit_test(test_emit_c),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
