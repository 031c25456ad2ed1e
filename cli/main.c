/*
 * main.c — the `nncc` command, a compiler driver for model files.
 *
 *   nncc summary FILE.c [--entry NAME]        print the model's Keras summary
 *   nncc summary FILE.safetensors             … of a model saved by nncc_save,
 *                                             with its compile configuration
 *                                             and training state
 *   nncc graph   FILE.c [--entry NAME] [--ir] [--after PASS [--train]]
 *                                            print its graph (DOT, or IR text),
 *                                            at any stage of the pipeline
 *   nncc emit-c  FILE.c [--entry NAME]        print the C nncc generates for it
 *   nncc run     FILE.c [ARGS…]               build FILE.c's program and run it
 *   nncc bench   FILE.c [--batch N] [--threads N] [--train|--infer] [--iters N] [--cold]
 *                                             measure its compile time, training and
 *                                             inference speed (cli/bench.c)
 *   nncc compile FILE.c|FILE.safetensors [-o OUT] [--emit exe|c|obj|lib] …
 *                                             deployment artifacts that need no
 *                                             nncc (cli/compile.c)
 *   nncc export  FILE.c|FILE.safetensors|FILE.onnx -o OUT.onnx [--opset N]
 *                                             the model as an ONNX file
 *                                             (cli/export.c)
 *
 * FILE.c defines `nncc_model *model(void)` (or --entry NAME).  nncc
 * compiles it as written, with warnings (cli/common.c; the cache key covers
 * every header it includes), through the JIT toolchain into a cached shared
 * object against its own header, loads it, calls the entry in a child
 * process (a crash there is named) and prints.  Exit status: 0
 * success, 1 a model or input error (including a FILE.c that does not
 * compile), 2 a usage error; `run` exits with the program's status.
 */
#define _GNU_SOURCE /* dladdr */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>
#include "include/nncc.h"
#include "frontend/frontend.h"
#include "passes/passes.h"
#include "runtime/jit/jit.h"
#include "runtime/io/safetensors.h"
#include "runtime/train/train.h"
#include "cli/cli.h"

/* Flags a program built by `nncc run` needs to link with this library
 * (the sanitizers' when nncc itself was built with them). */
#ifndef NNCC_EXTRA_CFLAGS
#define NNCC_EXTRA_CFLAGS ""
#endif

static const char usage_main[] =
    "usage: nncc [--help] [--version] COMMAND [ARGS]\n"
    "\n"
    "nncc compiles neural networks described with a Keras-style C API, or\n"
    "imported from ONNX files.\n"
    "\n"
    "commands:\n"
    "  summary FILE.c    print the model's summary table (Keras 2.15 layout)\n"
    "  summary FILE.safetensors\n"
    "                    the same for a model saved by nncc_save, with its compile\n"
    "                    configuration and training state\n"
    "  graph FILE.c      print the model's graph as Graphviz DOT (or IR text with --ir)\n"
    "  emit-c FILE.c     print the C source nncc generates for the model's inference\n"
    "  run FILE.c [ARGS] compile FILE.c (with its main) against nncc and run it\n"
    "  run MODEL --input FILE   run a saved model on a data file\n"
    "  bench FILE.c      measure compile time, training step, inference throughput,\n"
    "                    batch-1 latency and GFLOP/s against the machine's fp32 peak\n"
    "  compile FILE.c|FILE.safetensors|FILE.onnx\n"
    "                    write a deployment artifact that needs no nncc: a program,\n"
    "                    C source and header, an object or a static library\n"
    "  export FILE.c|FILE.safetensors|FILE.onnx -o OUT.onnx\n"
    "                    write the model at inference as an ONNX file (NHWC kept)\n"
    "\n"
    "FILE.c defines `nncc_model *model(void)`; --entry NAME picks another function.\n"
    "summary, graph, emit-c, bench and compile also take an ONNX model, FILE.onnx\n"
    "(opsets 1-17; its inputs keep ONNX's shapes and layout); --input-shape\n"
    "D0xD1x... fixes its dynamic dimensions (one shape per input, separated by\n"
    "commas; ? keeps one).\n"
    "Run `nncc COMMAND --help` for a command's options.\n"
    "\n"
    "environment:\n"
    "  NNCC_CC        C compiler for the JIT (default: clang, else cc)\n"
    "  NNCC_VERBOSE   report compile times and cache hits on stderr\n"
    "  NNCC_DUMP      print the IR after each pass (all, or pass names)\n"
    "  XDG_CACHE_HOME cache folder root (default ~/.cache; nncc uses its nncc/)\n";

static const char usage_summary[] =
    "usage: nncc summary FILE.c [--entry NAME]\n"
    "       nncc summary FILE.safetensors\n"
    "       nncc summary FILE.onnx [--input-shape SHAPES]\n"
    "\n"
    "Compiles FILE.c, calls its model entry (default `model`) and prints the\n"
    "model's summary: layers, output shapes, parameter counts, then the\n"
    "workspace the memory planner gives its inference for one sample.\n"
    "\n"
    "A FILE.safetensors written by nncc_save (or ModelCheckpoint) is loaded\n"
    "instead: its summary is followed by the compile configuration (optimizer\n"
    "and hyper-parameters, loss, metrics) and the training state (epochs,\n"
    "optimizer iterations, learning rate).  A FILE.onnx is imported: its rows\n"
    "name each node's ONNX op type and shape.\n"
    "\n"
    "options:\n"
    "  --entry NAME   the function returning the model (nncc_model *NAME(void))\n"
    "  --input-shape SHAPES  FILE.onnx: fix dynamic dimensions (1x3x224x224,...)\n"
    "  -h, --help     show this help\n";

static const char usage_graph[] =
    "usage: nncc graph FILE.c [--entry NAME] [--ir] [--after PASS [--train]]\n"
    "\n"
    "Compiles FILE.c, calls its model entry and prints the model's graph:\n"
    "Graphviz DOT on stdout (render with `dot -Tsvg`), or the IR as text with\n"
    "--ir.  Without --after, the graph as the model's layers built it; with\n"
    "--after, the program as the compiler's pipeline leaves it after that pass\n"
    "(fusion groups drawn as clusters; --ir adds what the pass decided).\n"
    "FILE.safetensors, a model written by nncc_save, and FILE.onnx work as\n"
    "FILE.c does.\n"
    "\n"
    "options:\n"
    "  --entry NAME   the function returning the model (nncc_model *NAME(void))\n"
    "  --input-shape SHAPES  FILE.onnx: fix dynamic dimensions (1x3x224x224,...)\n"
    "  --ir           print the IR as text instead of DOT\n"
    "  --after PASS   shapes, autodiff, fuse, tile or memplan\n"
    "  --train        the training step (the entry must call nncc_compile)\n"
    "                 instead of the inference forward; autodiff needs it\n"
    "  -h, --help     show this help\n";

static const char usage_emit[] =
    "usage: nncc emit-c FILE.c [--entry NAME]\n"
    "\n"
    "Compiles FILE.c, calls its model entry and prints the C translation unit\n"
    "nncc generates for the model's inference forward (what the JIT compiles).\n"
    "NNCC_DUMP=all also prints the IR after each pass, on stderr.\n"
    "FILE.safetensors, a model written by nncc_save, and FILE.onnx work as\n"
    "FILE.c does.\n"
    "\n"
    "options:\n"
    "  --entry NAME   the function returning the model (nncc_model *NAME(void))\n"
    "  --input-shape SHAPES  FILE.onnx: fix dynamic dimensions (1x3x224x224,...)\n"
    "  -h, --help     show this help\n";

static const char usage_run[] =
    "usage: nncc run FILE.c [ARGS...]\n"
    "       nncc run MODEL --input FILE [--output FILE.npy] [--labels FILE] [--scale S]\n"
    "\n"
    "Compiles FILE.c, a program with its own main(), against nncc (header and\n"
    "library), links it, and runs it with ARGS; exits with its status.  The\n"
    "program is cached like every JIT product, so a second run starts at once.\n"
    "Given a saved model (FILE.safetensors, Keras' FILE.keras or FILE.h5,\n"
    "FILE.onnx) it runs the model on --input's rows instead: see\n"
    "nncc run MODEL --help.\n"
    "\n"
    "options (before FILE.c):\n"
    "  -h, --help     show this help\n";


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
        } else if (strcmp(s, "--input-shape") == 0 || strncmp(s, "--input-shape=", 14) == 0) {
            if (s[13] == '=')
                a->input_shape = s + 14;
            else if (i + 1 < argc)
                a->input_shape = argv[++i];
            else
                return usage_error(cmd, "option '%s' needs shapes like 1x3x224x224", s);
            if (!cli_input_shape_ok(cmd, a->input_shape))
                return EXIT_USAGE;
        } else if (allow_ir && strcmp(s, "--ir") == 0) {
            a->ir = true;
        } else if (allow_ir && strcmp(s, "--train") == 0) {
            a->train = true;
        } else if (allow_ir && (strcmp(s, "--after") == 0 || strncmp(s, "--after=", 8) == 0)) {
            if (s[7] == '=')
                a->after = s + 8;
            else if (i + 1 < argc)
                a->after = argv[++i];
            else
                return usage_error(cmd, "option '%s' needs a pass name", s);
            bool known = false;
            for (int k = 0; nncc_pass_names[k]; k++)
                known |= strcmp(a->after, nncc_pass_names[k]) == 0;
            if (!known)
                return usage_error(cmd, "unknown pass '%s' (shapes, autodiff, fuse, tile, memplan)",
                                   a->after);
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
    if (a->train && !a->after)
        return usage_error(cmd, "%s", "--train needs --after PASS");
    if (a->after && strcmp(a->after, "autodiff") == 0 && !a->train)
        return usage_error(cmd, "%s", "--after autodiff needs --train (inference has no autodiff)");
    return -1;
}


/* nncc run: build FILE.c's program against this very library and exec it. */
static int cmd_run(int argc, char **argv)
{
    if (argc < 1)
        return usage_error("run", "%s", "missing FILE.c");
    if (strcmp(argv[0], "-h") == 0 || strcmp(argv[0], "--help") == 0) {
        fputs(usage_run, stdout);
        return 0;
    }
    if (argv[0][0] == '-')
        return usage_error("run", "unknown option '%s'", argv[0]);
    const char *file = argv[0];
    size_t flen = strlen(file);
    if (cli_is_model_file(file) || (flen > 5 && strcmp(file + flen - 5, ".onnx") == 0))
        return cli_run_model(argc, argv);
    if (flen < 3 || strcmp(file + flen - 2, ".c") != 0) {
        fprintf(stderr, "nncc run: %s is not a C file (FILE.c, with its main()) nor a model "
                "file (FILE.safetensors, FILE.keras, FILE.h5, FILE.onnx)\n", file);
        return EXIT_MODEL;
    }
#ifdef NNCC_RUN_CC
    setenv("NNCC_CC", NNCC_RUN_CC, 0); /* unless the user chose one */
#endif
    struct nncc_jit jit;
    if (nncc_jit_init(&jit) != NNCC_OK) {
        fprintf(stderr, "nncc: %s\n", nncc_last_error());
        return EXIT_MODEL;
    }
    /* The library this process runs is the one the program links. */
    Dl_info info;
    char libdir[4096] = ".";
    if (dladdr((void *)nncc_summary, &info) && info.dli_fname) {
        snprintf(libdir, sizeof libdir, "%s", info.dli_fname);
        char *slash = strrchr(libdir, '/');
        if (slash)
            *slash = '\0';
    }
    char link[8400];
    snprintf(link, sizeof link, "-L%s -lnncc -Wl,-rpath,%s -lm", libdir, libdir);
    struct nncc_jit_result res;
    if (!cli_compile(&jit, file, "-O2 " NNCC_EXTRA_CFLAGS, link, true, &res))
        return EXIT_MODEL;
    fflush(NULL);
    argv[0] = (char *)file; /* the program sees its source's name as argv[0] */
    execv(res.so_path, argv);
    fprintf(stderr, "nncc: cannot run '%s': %s\n", res.so_path, strerror(errno));
    return EXIT_MODEL;
}

/* After the Keras table: the workspace the memory plan gives the model's
 * inference for one sample (passes/memplan.c; kernel scratch space, none
 * at inference today, is not counted).  Not part of nncc_summary(), which
 * prints exactly Keras' table. */
static enum nncc_status print_planned_workspace(const nncc_model *m)
{
    struct nncc_lower_opts lo = {.model_name = m->name};
    struct ir_plan plan[2];
    enum nncc_status st = nncc_lower(&m->program, &lo, plan);
    if (!st)
        printf("Planned workspace (inference, batch 1): %lld bytes\n",
               (long long)(plan[0].mem.fixed_size + plan[0].mem.per_sample_size) *
                   (long long)sizeof(float));
    ir_plan_free(&plan[0]);
    return st;
}

/* nncc graph --after PASS [--train]: the plan as the pipeline leaves it
 * after PASS, as DOT (fusion groups as clusters) or text. */
static enum nncc_status print_after(nncc_model *m, const struct args *a)
{
    if (!model_check_ready(m))
        return nncc_last_status();
    struct nncc_train_spec spec;
    struct nncc_lower_opts lo = {.model_name = m->name, .stop_after = a->after};
    if (a->train) {
        if (!m->train)
            return nncc_fail(NNCC_ERR_ARG, "graph --train: model \"%s\" is not compiled: call "
                             "nncc_compile() in the entry", m->name);
        spec = nncc_train_spec_of(m, nncc_train_default_target(m));
        lo.train = &spec;
    }
    struct ir_plan plans[2];
    enum nncc_status st = nncc_lower(&m->program, &lo, plans);
    if (!st && a->ir) {
        ir_print(&plans[0].program, stdout);
        ir_plan_print_groups(&plans[0], stdout);
        ir_plan_print_tiles(&plans[0], stdout);
        ir_plan_print_memory(&plans[0], stdout);
    } else if (!st) {
        char title[400];
        snprintf(title, sizeof title, "%s, %s after %s", m->name,
                 a->train ? "training step" : "inference", a->after);
        ir_print_dot(&plans[0].program, plans[0].groups, title, stdout);
    }
    ir_plan_free(&plans[0]);
    ir_plan_free(&plans[1]);
    return st;
}

/* nncc summary FILE.safetensors|.keras|.h5: a saved model and its training
 * state (the optimizer, loss, metrics and iterations the file holds). */
static int summary_saved(const char *file)
{
    nncc_model *m = nncc_load(file);
    if (!m) {
        fprintf(stderr, "nncc: %s\n", nncc_last_error());
        return EXIT_MODEL;
    }
    enum nncc_status st = nncc_summary(m, stdout);
    if (st == NNCC_OK)
        st = nncc_model_print_training(m, stdout);
    if (st != NNCC_OK)
        fprintf(stderr, "nncc: %s: %s\n", file, nncc_last_error());
    nncc_model_free(m);
    return st == NNCC_OK ? 0 : EXIT_MODEL;
}

static int run(const char *cmd, int argc, char **argv)
{
    bool graph = strcmp(cmd, "graph") == 0, emit = strcmp(cmd, "emit-c") == 0;
    struct args a = {0};
    int rc = parse(cmd, argc, argv, &a, graph ? usage_graph : emit ? usage_emit : usage_summary,
                   graph);
    if (rc >= 0)
        return rc;
    if (!graph && !emit && cli_is_model_file(a.file))
        return summary_saved(a.file);
    void *handle = NULL;
    nncc_model *m = load_model(&a, &handle);
    if (!m) {
        if (handle)
            nncc_jit_unload(handle);
        return EXIT_MODEL;
    }
    enum nncc_status st = NNCC_OK;
    if (emit) {
        char *src = nncc_model_emit_c(m);
        if (src)
            fputs(src, stdout);
        else
            st = nncc_last_status();
        free(src);
    } else if (graph && a.after) {
        st = print_after(m, &a);
    } else if (graph) {
        st = a.ir ? nncc_model_dump_ir(m, stdout) : nncc_model_dot(m, stdout);
    } else {
        st = nncc_summary(m, stdout);
        if (st == NNCC_OK && m->built)
            st = print_planned_workspace(m);
    }
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
            const char *u = strcmp(argv[2], "summary") == 0  ? usage_summary
                            : strcmp(argv[2], "graph") == 0  ? usage_graph
                            : strcmp(argv[2], "emit-c") == 0 ? usage_emit
                            : strcmp(argv[2], "run") == 0    ? usage_run
                            : strcmp(argv[2], "bench") == 0  ? usage_bench
                            : strcmp(argv[2], "compile") == 0 ? usage_compile
                            : strcmp(argv[2], "export") == 0 ? usage_export
                                                             : NULL;
            if (u) {
                fputs(u, stdout);
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
    if (strcmp(cmd, "summary") == 0 || strcmp(cmd, "graph") == 0 || strcmp(cmd, "emit-c") == 0)
        return run(cmd, argc - 2, argv + 2);
    if (strcmp(cmd, "run") == 0)
        return cmd_run(argc - 2, argv + 2);
    if (strcmp(cmd, "bench") == 0)
        return cmd_bench(argc - 2, argv + 2);
    if (strcmp(cmd, "compile") == 0)
        return cmd_compile(argc - 2, argv + 2);
    if (strcmp(cmd, "export") == 0)
        return cmd_export(argc - 2, argv + 2);
    if (cmd[0] == '-')
        return usage_error(NULL, "unknown option '%s'", cmd);
    return usage_error(NULL, "unknown command '%s'", cmd);
}
