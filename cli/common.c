/*
 * common.c — what the `nncc` command's subcommands share: usage errors,
 * preprocessing a model file and loading its model through the JIT.  The
 * subcommands (main.c's summary, graph, emit-c and run; bench.c;
 * compile.c) use these through cli/cli.h and never call one another;
 * main.c only dispatches.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/* Preprocesses FILE.c with its own folder on the include path, so that the
 * cache key covers every header it includes.  NULL after printing why. */
char *cli_preprocess(struct nncc_jit *jit, const char *file, size_t *len)
{
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
    char *text = NULL, *diag = NULL;
    if (access(file, R_OK) != 0) {
        fprintf(stderr, "nncc: cannot open '%s': %s\n", file, strerror(errno));
        return NULL;
    }
    if (nncc_jit_preprocess(jit, file, args, 1, &text, len, &diag) != NNCC_OK) {
        if (diag)
            fputs(diag, stderr);
        else
            fprintf(stderr, "nncc: %s\n", nncc_last_error());
        fprintf(stderr, "nncc: %s does not compile\n", file);
        free(diag);
        return NULL;
    }
    return text;
}

/* Compiles FILE.c, loads it and calls the entry: the model, or NULL after
 * printing why. */
nncc_model *load_model(const struct args *a, void **handle)
{
    struct nncc_jit jit;
    if (nncc_jit_init(&jit) != NNCC_OK) {
        fprintf(stderr, "nncc: %s\n", nncc_last_error());
        return NULL;
    }
    size_t len;
    char *src = cli_preprocess(&jit, a->file, &len);
    if (!src)
        return NULL;
    struct nncc_jit_result res = {0};
    nncc_model *m = NULL;
    if (nncc_jit_compile(&jit, src, len, "-O0 -g0 -w", &res) != NNCC_OK) {
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
