/*
 * cli.h — what the `nncc` command's files share: the helpers of
 * cli/common.c, and the subcommands main.c dispatches to (cli/bench.c,
 * cli/compile.c), which use only the helpers, never each other or main.c.
 */
#ifndef NNCC_CLI_H
#define NNCC_CLI_H

#include <stdbool.h>
#include "include/nncc.h"

enum { EXIT_MODEL = 1, EXIT_USAGE = 2 };

/* FILE.c and the options every model command takes. */
struct args {
    const char *file;
    const char *entry;
    bool ir;
    const char *after; /* nncc graph --after PASS */
    bool train;        /* nncc graph --train: the training step */
};

/* Prints "nncc CMD: <fmt with what>" and the --help hint; returns EXIT_USAGE. */
int usage_error(const char *cmd, const char *fmt, const char *what);

/* Preprocesses FILE.c with its own folder on the include path, so that the
 * cache key covers every header it includes.  NULL after printing why. */
struct nncc_jit;
char *cli_preprocess(struct nncc_jit *jit, const char *file, size_t *len);

/* Compiles FILE.c, loads it (*handle) and calls the entry: the model, or
 * NULL after printing why (*handle may be set even then: unload it). */
nncc_model *load_model(const struct args *a, void **handle);

/* nncc bench (cli/bench.c); argv holds the arguments after "bench". */
int cmd_bench(int argc, char **argv);
extern const char usage_bench[];

/* nncc compile (cli/compile.c); argv holds the arguments after "compile". */
int cmd_compile(int argc, char **argv);
extern const char usage_compile[];

#endif
