/*
 * common.c — what the `nncc` command's subcommands share: usage errors,
 * compiling a user's file and loading its model through the JIT.  The
 * subcommands (main.c's summary, graph, emit-c and run; bench.c;
 * compile.c) use these through cli/cli.h and never call one another;
 * main.c only dispatches.
 *
 * A user's file is compiled as written (nncc_jit_compile_file), so that
 * the compiler's messages point at the user's own lines, and with warnings:
 * they go to stderr, and the type mistakes a Keras habit makes in C (a
 * string for an enum, an array's data for the array, a function nncc does
 * not have) are errors rather than a wrong model at run time.
 *
 * The entry runs in a child process (load_model): a crash inside it is
 * reported by the parent, naming the signal, instead of ending the command
 * without a word.  The child goes on with the whole command, so the model
 * is built once; the parent only waits and passes on its exit status.
 */
#define _GNU_SOURCE /* dladdr1, sigabbrev_np */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include "include/nncc.h"
#include "runtime/jit/jit.h"
#include "cli/cli.h"

int usage_error(const char *cmd, const char *fmt, const char *what)
{
    fprintf(stderr, "nncc%s%s: ", cmd ? " " : "", cmd ? cmd : "");
    fprintf(stderr, fmt, what);
    fprintf(stderr, "\nTry 'nncc %s%s--help'.\n", cmd ? cmd : "", cmd ? " " : "");
    return EXIT_USAGE;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n > k && strcmp(s + n - k, suffix) == 0;
}

bool cli_compile(struct nncc_jit *jit, const char *file, const char *flags, const char *link,
                 bool exe, struct nncc_jit_result *res)
{
    memset(res, 0, sizeof *res);
    if (access(file, R_OK) != 0) {
        fprintf(stderr, "nncc: cannot open '%s': %s\n", file, strerror(errno));
        return false;
    }
    /* Its own folder on the include path: `#include <widths.h>` finds a
     * header next to it, as "widths.h" does. */
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", file);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    char inc[4200];
    snprintf(inc, sizeof inc, "-I%s", dir);
    const char *args[] = {inc};
    char all[1024];
    snprintf(all, sizeof all, "%s %s", CLI_USER_WARNINGS, flags);
    enum nncc_status st = nncc_jit_compile_file(jit, file, args, 1, all, link, exe, res);
    if (res->diagnostics)
        fputs(res->diagnostics, stderr);
    if (st != NNCC_OK) {
        if (!res->diagnostics)
            fprintf(stderr, "nncc: %s\n", nncc_last_error());
        fprintf(stderr, "nncc: %s does not compile\n", file);
    }
    free(res->diagnostics);
    res->diagnostics = NULL;
    return st == NNCC_OK;
}

/* The signals a bug in the user's code ends a process with. */
static const int crash_signals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTRAP, SIGSYS};
#define N_CRASH (int)(sizeof crash_signals / sizeof *crash_signals)

/* "SIGSEGV", or "signal 64" for one without a name. */
static void signal_name(int sig, char *buf, size_t size)
{
    const char *abbrev = sigabbrev_np(sig);
    if (abbrev)
        snprintf(buf, size, "SIG%s", abbrev);
    else
        snprintf(buf, size, "signal %d", sig);
}

/* Calls the entry in a child process, which returns its model and goes on
 * with the command.  This process waits: when the child is killed by a
 * signal before the entry returned, it says so and exits 1; otherwise it
 * exits as the child did (a later crash, in nncc itself, is named and
 * passed on as the same signal).  A pipe tells the two cases apart: the
 * child writes one byte once the entry has returned. */
static nncc_model *call_entry(const struct args *a, nncc_model *(*entry)(void))
{
    int done[2];
    if (pipe(done) != 0) { /* no child: the entry runs here, unguarded */
        nncc_clear_error();
        return entry();
    }
    fcntl(done[0], F_SETFD, FD_CLOEXEC);
    fcntl(done[1], F_SETFD, FD_CLOEXEC);
    pid_t parent = getpid();
    fflush(NULL); /* nothing buffered is written twice */
    pid_t pid = fork();
    if (pid < 0) {
        close(done[0]);
        close(done[1]);
        nncc_clear_error();
        return entry();
    }
    if (pid == 0) {
        close(done[0]);
        /* Killed with the parent (a `timeout`, a test harness), never orphaned. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            _exit(EXIT_MODEL);
        /* The default action for the crash signals while the entry runs,
         * so that a sanitizer's handler does not turn a crash into exit 1
         * and the parent always sees the signal. */
        struct sigaction dfl = {.sa_handler = SIG_DFL}, old[N_CRASH];
        for (int i = 0; i < N_CRASH; i++)
            sigaction(crash_signals[i], &dfl, &old[i]);
        nncc_clear_error();
        nncc_model *m = entry();
        for (int i = 0; i < N_CRASH; i++)
            sigaction(crash_signals[i], &old[i], NULL);
        ssize_t w = write(done[1], "", 1);
        (void)w;
        close(done[1]);
        return m;
    }
    close(done[1]);
    int ws;
    while (waitpid(pid, &ws, 0) < 0) {
        if (errno != EINTR) {
            fprintf(stderr, "nncc: lost the process running %s(): %s\n", a->entry,
                    strerror(errno));
            _exit(EXIT_MODEL);
        }
    }
    char byte;
    ssize_t n;
    while ((n = read(done[0], &byte, 1)) < 0 && errno == EINTR)
        ;
    close(done[0]);
    if (WIFEXITED(ws))
        _exit(WEXITSTATUS(ws));
    int sig = WIFSIGNALED(ws) ? WTERMSIG(ws) : SIGKILL;
    bool crashed = false;
    for (int i = 0; i < N_CRASH; i++)
        crashed |= sig == crash_signals[i];
    char name[32];
    signal_name(sig, name, sizeof name);
    if (crashed && n != 1) {
        fprintf(stderr, "nncc: %s() in %s crashed (%s)\n", a->entry, a->file, name);
        _exit(EXIT_MODEL);
    }
    /* A broken pipe (`nncc graph F.c | head`) or an interrupt ends this
     * process as it ended the child, without a word, as before. */
    if (crashed)
        fprintf(stderr, "nncc: %s: crashed (%s) after %s() returned\n", a->file, name, a->entry);
    signal(sig, SIG_DFL);
    raise(sig);
    _exit(128 + sig);
}

/* "1x3x224x224,1x10": one shape per input, in order; 0 or ? keeps the
 * file's dimension.  -1 when malformed. */
static int parse_input_shapes(const char *spec, struct nncc_shape *out, int max)
{
    int n = 0;
    const char *p = spec;
    while (*p) {
        if (n == max)
            return -1;
        struct nncc_shape s = {0};
        for (;;) {
            if (s.rank == NNCC_MAX_RANK)
                return -1;
            if (*p == '?') {
                s.dim[s.rank++] = 0;
                p++;
            } else {
                char *end;
                long long d = strtoll(p, &end, 10);
                if (end == p || d < 0 || d > (1LL << 40))
                    return -1;
                s.dim[s.rank++] = d;
                p = end;
            }
            if (*p != 'x')
                break;
            p++;
        }
        out[n++] = s;
        if (*p == ',')
            p++;
        else if (*p)
            return -1;
    }
    return n;
}

bool cli_input_shape_ok(const char *cmd, const char *spec)
{
    struct nncc_shape s[64];
    if (parse_input_shapes(spec, s, 64) > 0)
        return true;
    usage_error(cmd, "--input-shape: expected shapes like 1x3x224x224 (one per input, "
                     "separated by commas; ? keeps a dimension), got '%s'", spec);
    return false;
}

bool cli_is_model_file(const char *path)
{
    return ends_with(path, ".safetensors") || ends_with(path, ".h5") ||
           ends_with(path, ".hdf5") || ends_with(path, ".keras");
}

nncc_model *load_model(const struct args *a, void **handle)
{
    *handle = NULL;
    if (ends_with(a->file, ".onnx")) {
        struct nncc_shape shapes[64];
        int n = a->input_shape ? parse_input_shapes(a->input_shape, shapes, 64) : 0;
        if (n < 0) {
            fprintf(stderr, "nncc: --input-shape '%s' is malformed\n", a->input_shape);
            return NULL;
        }
        nncc_model *m = nncc_load_onnx(a->file, .input_shapes = shapes, .n_input_shapes = n);
        if (!m)
            fprintf(stderr, "nncc: %s\n", nncc_last_error());
        return m;
    }
    if (a->input_shape) {
        fprintf(stderr, "nncc: --input-shape applies to ONNX models (FILE.onnx) only\n");
        return NULL;
    }
    if (cli_is_model_file(a->file)) {
        nncc_model *m = nncc_load(a->file);
        if (!m)
            fprintf(stderr, "nncc: %s\n", nncc_last_error());
        return m;
    }
    if (!ends_with(a->file, ".c")) {
        fprintf(stderr, "nncc: %s is neither a C file (FILE.c) nor a model file "
                "(FILE.safetensors, written by nncc_save; FILE.onnx; Keras' FILE.h5 or FILE.keras)\n", a->file);
        return NULL;
    }
    struct nncc_jit jit;
    if (nncc_jit_init(&jit) != NNCC_OK) {
        fprintf(stderr, "nncc: %s\n", nncc_last_error());
        return NULL;
    }
    struct nncc_jit_result res;
    if (!cli_compile(&jit, a->file, "-O0 -g0", NULL, false, &res))
        return NULL;
    if (!(*handle = nncc_jit_load(res.so_path))) {
        fprintf(stderr, "nncc: %s\n", nncc_last_error());
        return NULL;
    }
    void *sym = nncc_jit_symbol(*handle, a->entry, res.so_path);
    if (!sym) {
        fprintf(stderr, "nncc: %s does not define `nncc_model *%s(void)`\n", a->file, a->entry);
        return NULL;
    }
    /* `int model = 3;` links as well as a function does: calling it would
     * jump into data. */
    const ElfW(Sym) *info = NULL;
    Dl_info where;
    if (dladdr1(sym, &where, (void **)&info, RTLD_DL_SYMENT) && info &&
        ELF64_ST_TYPE(info->st_info) != STT_FUNC && ELF64_ST_TYPE(info->st_info) != STT_GNU_IFUNC) {
        fprintf(stderr, "nncc: %s: `%s` is a variable, not a function: define "
                "`nncc_model *%s(void)`\n", a->file, a->entry, a->entry);
        return NULL;
    }
    nncc_model *(*entry)(void) = NULL;
    memcpy(&entry, &sym, sizeof entry); /* object → function pointer, as POSIX allows */
    nncc_model *m = call_entry(a, entry);
    if (!m)
        fprintf(stderr, "nncc: %s: %s() returned no model: %s\n", a->file, a->entry,
                nncc_last_error()[0] ? nncc_last_error() : "(no error recorded)");
    return m;
}
