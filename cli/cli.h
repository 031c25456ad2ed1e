/*
 * cli.h — what the `nncc` command's files share: the helpers of
 * cli/common.c, and the subcommands main.c dispatches to (cli/bench.c,
 * cli/compile.c, cli/export.c), which use only the helpers, never each other or main.c.
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
    const char *input_shape; /* --input-shape for FILE.onnx: "1x3x224x224[,…]" */
};

/* Checks an --input-shape value (false after printing the usage error). */
bool cli_input_shape_ok(const char *cmd, const char *spec);

/* Prints "nncc CMD: <fmt with what>" and the --help hint; returns EXIT_USAGE. */
int usage_error(const char *cmd, const char *fmt, const char *what);

/* The warnings a user's file is compiled with: -Wall's, shown; and as
 * errors, the type mistakes that would otherwise compile into a wrong model
 * (`.activation = "relu"` is int-conversion in clang and an error in gcc;
 * `nncc_fit(m, x->data, y->data)` incompatible-pointer-types; a loss for an
 * activation enum-conversion). */
#define CLI_USER_WARNINGS                                                                  \
    "-Wall -Werror=int-conversion -Werror=incompatible-pointer-types "                   \
    "-Werror=implicit-function-declaration -Werror=enum-conversion"

/* Compiles FILE.c as written (its own folder on the include path) with
 * CLI_USER_WARNINGS and `flags`, into a cached shared object or, with
 * `exe`, a program linked with `link`.  The compiler's messages go to
 * stderr (warnings too); false after saying the file does not compile. */
struct nncc_jit;
struct nncc_jit_result;
bool cli_compile(struct nncc_jit *jit, const char *file, const char *flags, const char *link,
                 bool exe, struct nncc_jit_result *res);

/* The model of a FILE.safetensors (nncc_load), or: compiles FILE.c, loads
 * it (*handle) and calls the entry in a child process that goes on with
 * the command (this process only waits for it, and names the signal when
 * the entry crashes).  NULL after printing why (*handle may be set even
 * then: unload it); any other kind of file is refused. */
nncc_model *load_model(const struct args *a, void **handle);
/* A model file nncc_load reads: FILE.safetensors (nncc_save), Keras'
 * FILE.h5 / FILE.hdf5 / FILE.keras. */
bool cli_is_model_file(const char *path);

/* nncc run MODEL-FILE --input FILE …: argv[0] is the model file (run_model.c). */
int cli_run_model(int argc, char **argv);

/* nncc bench (cli/bench.c); argv holds the arguments after "bench". */
int cmd_bench(int argc, char **argv);
extern const char usage_bench[];

/* nncc compile (cli/compile.c); argv holds the arguments after "compile". */
int cmd_compile(int argc, char **argv);
extern const char usage_compile[];

/* nncc export (cli/export.c); argv holds the arguments after "export". */
int cmd_export(int argc, char **argv);
extern const char usage_export[];

#endif
