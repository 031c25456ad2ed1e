/*
 * main.c — the `nncc` command, a compiler driver for model files.
 *
 *   nncc summary FILE.c [--entry NAME]   print the model's Keras summary
 *   nncc graph   FILE.c [--entry NAME] [--ir]   print its graph (DOT, or IR text)
 *
 * FILE.c defines `nncc_model *model(void)` (or --entry NAME).  nncc compiles
 * it through the JIT toolchain into a cached shared object against its own
 * header, loads it, calls the entry and prints.  Exit status: 0 success,
 * 1 a model or input error (including a FILE.c that does not compile),
 * 2 a usage error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "include/nncc.h"
#include "runtime/jit.h"

enum { EXIT_MODEL = 1, EXIT_USAGE = 2 };

static const char usage_main[] =
    "usage: nncc [--help] [--version] COMMAND [ARGS]\n"
    "\n"
    "nncc compiles neural networks described with a Keras-style C API.\n"
    "\n"
    "commands:\n"
    "  summary FILE.c    print the model's summary table (Keras 2.15 layout)\n"
    "  graph FILE.c      print the model's graph as Graphviz DOT (or IR text with --ir)\n"
    "\n"
    "FILE.c defines `nncc_model *model(void)`; --entry NAME picks another function.\n"
    "Run `nncc COMMAND --help` for a command's options.\n"
    "\n"
    "environment:\n"
    "  NNCC_CC        C compiler for the JIT (default: clang, else cc)\n"
    "  NNCC_VERBOSE   report compile times and cache hits on stderr\n"
    "  NNCC_DUMP      print the IR after each pass (all, or pass names)\n"
    "  XDG_CACHE_HOME cache folder root (default ~/.cache; nncc uses its nncc/)\n";

static const char usage_summary[] =
    "usage: nncc summary FILE.c [--entry NAME]\n"
    "\n"
    "Compiles FILE.c, calls its model entry (default `model`) and prints the\n"
    "model's summary: layers, output shapes, parameter counts.\n"
    "\n"
    "options:\n"
    "  --entry NAME   the function returning the model (nncc_model *NAME(void))\n"
    "  -h, --help     show this help\n";

static const char usage_graph[] =
    "usage: nncc graph FILE.c [--entry NAME] [--ir]\n"
    "\n"
    "Compiles FILE.c, calls its model entry and prints the model's graph after\n"
    "the pass pipeline: Graphviz DOT on stdout (render with `dot -Tsvg`), or\n"
    "the IR as text with --ir.\n"
    "\n"
    "options:\n"
    "  --entry NAME   the function returning the model (nncc_model *NAME(void))\n"
    "  --ir           print the IR as text instead of DOT\n"
    "  -h, --help     show this help\n";

struct args {
    const char *file;
    const char *entry;
    bool ir;
};

static int usage_error(const char *cmd, const char *fmt, const char *what)
{
    fprintf(stderr, "nncc%s%s: ", cmd ? " " : "", cmd ? cmd : "");
    fprintf(stderr, fmt, what);
    fprintf(stderr, "\nTry 'nncc %s--help'.\n", cmd ? cmd : "");
    return EXIT_USAGE;
}

/* Parses FILE.c [--entry NAME] [--ir]; returns -1 to go on, else an exit code. */
static int parse(const char *cmd, int argc, char **argv, struct args *a, const char *help,
                 bool allow_ir)
{
    a->entry = "model";
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        if (strcmp(s, "-h") == 0 || strcmp(s, "--help") == 0) {
            fputs(help, stdout);
            return 0;
        } else if (strcmp(s, "--entry") == 0) {
            if (i + 1 >= argc)
                return usage_error(cmd, "option '%s' needs a function name", s);
            a->entry = argv[++i];
        } else if (strncmp(s, "--entry=", 8) == 0) {
            a->entry = s + 8;
        } else if (allow_ir && strcmp(s, "--ir") == 0) {
            a->ir = true;
        } else if (s[0] == '-' && s[1]) {
            return usage_error(cmd, "unknown option '%s'", s);
        } else if (a->file) {
            return usage_error(cmd, "unexpected argument '%s' (one FILE.c only)", s);
        } else {
            a->file = s;
        }
    }
    if (!a->file)
        return usage_error(cmd, "%s", "missing FILE.c");
    if (!a->entry[0])
        return usage_error(cmd, "%s", "--entry needs a non-empty function name");
    return -1;
}

/* Compiles FILE.c, loads it and calls the entry: the model, or NULL after
 * printing why. */
static nncc_model *load_model(const struct args *a, void **handle)
{
    size_t len;
    char *text = nncc_read_file(a->file, &len);
    if (!text) {
        fprintf(stderr, "nncc: %s\n", nncc_last_error());
        return NULL;
    }
    /* #line makes the compiler's diagnostics name the user's file; -I lets
     * it include files next to itself. */
    size_t cap = len + strlen(a->file) * 2 + 64;
    char *src = malloc(cap);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", a->file);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    if (!src) {
        free(text);
        fprintf(stderr, "nncc: out of memory\n");
        return NULL;
    }
    int n = snprintf(src, cap, "#line 1 \"");
    for (const char *p = a->file; *p; p++) {
        if (*p == '"' || *p == '\\')
            src[n++] = '\\';
        src[n++] = *p;
    }
    n += snprintf(src + n, cap - (size_t)n, "\"\n");
    memcpy(src + n, text, len);
    n += (int)len;
    src[n] = '\0';
    free(text);

    struct nncc_jit jit;
    struct nncc_jit_result res = {0};
    char flags[4200];
    snprintf(flags, sizeof flags, "-O0 -g0 -w -I%s", dir);
    nncc_model *m = NULL;
    if (nncc_jit_init(&jit) != NNCC_OK) {
        fprintf(stderr, "nncc: %s\n", nncc_last_error());
    } else if (nncc_jit_compile(&jit, src, (size_t)n, flags, &res) != NNCC_OK) {
        if (res.diagnostics)
            fputs(res.diagnostics, stderr);
        fprintf(stderr, "nncc: %s does not compile\n", a->file);
    } else if (!(*handle = nncc_jit_load(res.so_path))) {
        fprintf(stderr, "nncc: %s\n", nncc_last_error());
    } else {
        nncc_model *(*entry)(void) = NULL;
        void *sym = nncc_jit_symbol(*handle, a->entry, res.so_path);
        memcpy(&entry, &sym, sizeof entry); /* object → function pointer, as POSIX allows */
        if (!sym) {
            fprintf(stderr, "nncc: %s does not define `nncc_model *%s(void)`\n", a->file, a->entry);
        } else {
            nncc_clear_error();
            m = entry();
            if (!m)
                fprintf(stderr, "nncc: %s: %s() returned no model: %s\n", a->file, a->entry,
                        nncc_last_error()[0] ? nncc_last_error() : "(no error recorded)");
        }
    }
    free(res.diagnostics);
    free(src);
    return m;
}

static int run(const char *cmd, int argc, char **argv)
{
    bool graph = strcmp(cmd, "graph") == 0;
    struct args a = {0};
    int rc = parse(cmd, argc, argv, &a, graph ? usage_graph : usage_summary, graph);
    if (rc >= 0)
        return rc;
    void *handle = NULL;
    nncc_model *m = load_model(&a, &handle);
    if (!m) {
        if (handle)
            nncc_jit_unload(handle);
        return EXIT_MODEL;
    }
    enum nncc_status st = graph ? (a.ir ? nncc_model_dump_ir(m, stdout) : nncc_model_dot(m, stdout))
                                : nncc_summary(m, stdout);
    if (st != NNCC_OK)
        fprintf(stderr, "nncc: %s: %s\n", a.file, nncc_last_error());
    nncc_model_free(m);
    /* The model's code lives in the object: unload only after freeing it. */
    nncc_jit_unload(handle);
    return st == NNCC_OK ? 0 : EXIT_MODEL;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage_main, stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        if (strcmp(cmd, "help") == 0 && argc > 2) {
            if (strcmp(argv[2], "summary") == 0 || strcmp(argv[2], "graph") == 0) {
                fputs(strcmp(argv[2], "graph") == 0 ? usage_graph : usage_summary, stdout);
                return 0;
            }
            return usage_error(NULL, "unknown command '%s'", argv[2]);
        }
        fputs(usage_main, stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "-V") == 0) {
        printf("nncc %s\n", NNCC_VERSION_STRING);
        return 0;
    }
    if (strcmp(cmd, "summary") == 0 || strcmp(cmd, "graph") == 0)
        return run(cmd, argc - 2, argv + 2);
    if (cmd[0] == '-')
        return usage_error(NULL, "unknown option '%s'", cmd);
    return usage_error(NULL, "unknown command '%s'", cmd);
}
