/*
 * compile.c — `nncc compile`: ahead-of-time deployment artifacts that need
 * no nncc at run time.
 *
 *   nncc compile FILE.c|MODEL.safetensors [-o OUT] [--weights W.safetensors]
 *                [--emit exe|c|obj|lib] [--batch N] [--name NAME] [--threads]
 *                [--train] [--external-weights] [--entry NAME] [--cflags FLAGS]
 *
 * The model comes from FILE.c's entry (cli/common.c's load_model) or from a
 * file nncc_save wrote; weights from --weights, else the saved model, else
 * (with a warning) what FILE.c's initializers drew.  codegen/aot.c writes
 * the sources; this file names the outputs, writes them, and runs the C
 * compiler ($NNCC_CC, else cc, else clang: see find_cc) and `ar` ($AR)
 * with posix_spawnp and argv arrays, never a shell.
 * Objects are built in a private mkdtemp() folder, then renamed into place.
 *
 * OUT: --emit exe, the program (default ./NAME); otherwise a path stem
 * DIR/STEM (a .c/.h/.o/.a suffix and, for lib, a "lib" prefix are dropped)
 * giving DIR/STEM.c + STEM.h, STEM.o + STEM.h, or libSTEM.a + STEM.h, and
 * STEM.bin with --external-weights.  NAME defaults to STEM (or the model's
 * name), made a C identifier.  Exit status: 0, 1 a model or compiler error,
 * 2 a usage error.
 */
#include <dirent.h>
#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "include/nncc.h"
#include "frontend/frontend.h"
#include "codegen/aot.h"
#include "runtime/jit/jit.h"
#include "runtime/train/train.h"
#include "cli/cli.h"

extern char **environ;

const char usage_compile[] =
    "usage: nncc compile FILE.c|MODEL.safetensors|MODEL.onnx [-o OUT] [--weights W.safetensors]\n"
    "                    [--emit exe|c|obj|lib] [--batch N] [--name NAME] [--threads]\n"
    "                    [--train] [--external-weights] [--entry NAME] [--cflags FLAGS]\n"
    "\n"
    "Writes a deployment artifact that runs without nncc.  The model comes from\n"
    "FILE.c's entry function, a model saved by nncc_save or an ONNX model; its\n"
    "weights from --weights, else the saved model or the ONNX initializers, else\n"
    "FILE.c's initializers (with a warning).  An ONNX model's program takes and\n"
    "gives its arrays in ONNX's shapes and layout (NCHW images stay NCHW).\n"
    "\n"
    "  --emit exe   (default) OUT, a program: OUT [--input FILE] [--output FILE.npy]\n"
    "               [--labels FILE] [--bench] reads .npy, IDX (gzip or not) or raw\n"
    "               float32 and prints each row's class or writes the outputs; it\n"
    "               links only the C library and libm (+ OpenMP with --threads)\n"
    "  --emit c     OUT.c and OUT.h: portable C11, no malloc, no stdio; OUT.h\n"
    "               documents the ABI (sizes, alignment, NAME_predict)\n"
    "  --emit obj   OUT.o and OUT.h          --emit lib   libOUT.a and OUT.h\n"
    "\n"
    "options:\n"
    "  -o OUT              the program, or the stem of the files (default: NAME)\n"
    "  --name NAME         prefix of every exported C name (default: from OUT or\n"
    "                      the model's name, made a C identifier)\n"
    "  --batch N           rows per call in the program, and NAME_BATCH (default 32)\n"
    "  --threads           compile with OpenMP (the program then needs its runtime)\n"
    "  --train             also emit NAME_train_step (optimizer step) for on-device\n"
    "                      fine-tuning; needs a compiled model (c, obj, lib)\n"
    "  --external-weights  write the weights to OUT.bin, passed in by the caller,\n"
    "                      instead of embedding them (c, obj, lib)\n"
    "  --entry NAME        FILE.c's function returning the model (default: model)\n"
    "  --input-shape SHAPES  MODEL.onnx: fix dynamic dimensions (1x3x224x224,...)\n"
    "  --cflags FLAGS      compiler flags (default: -O2 -march=native)\n"
    "  -h, --help          show this help\n"
    "\n"
    "environment: NNCC_CC (the compiler: default cc, else clang), AR (default ar)\n";

enum emit { EMIT_EXE, EMIT_C, EMIT_OBJ, EMIT_LIB };

struct copts {
    struct args a;
    const char *out, *weights, *name, *cflags;
    enum emit emit;
    int batch;
    bool threads, train, external;
};

static int parse_int(const char *s, int *v)
{
    char *end;
    errno = 0;
    long x = strtol(s, &end, 10);
    if (!*s || *end || errno || x < 1 || x > 1 << 20)
        return -1;
    *v = (int)x;
    return 0;
}

/* -1 to go on, else an exit code. */
static int parse(int argc, char **argv, struct copts *o)
{
    o->a.entry = "model";
    o->batch = 32;
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool takes = strcmp(s, "-o") == 0 || strcmp(s, "--weights") == 0 ||
                     strcmp(s, "--emit") == 0 || strcmp(s, "--batch") == 0 ||
                     strcmp(s, "--name") == 0 || strcmp(s, "--entry") == 0 ||
                     strcmp(s, "--cflags") == 0 || strcmp(s, "--input-shape") == 0;
        if (strcmp(s, "-h") == 0 || strcmp(s, "--help") == 0) {
            fputs(usage_compile, stdout);
            return 0;
        } else if (takes && !v) {
            return usage_error("compile", "option '%s' needs a value", s);
        } else if (strcmp(s, "-o") == 0) {
            o->out = argv[++i];
        } else if (strcmp(s, "--weights") == 0) {
            o->weights = argv[++i];
        } else if (strcmp(s, "--name") == 0) {
            o->name = argv[++i];
        } else if (strcmp(s, "--entry") == 0) {
            o->a.entry = argv[++i];
        } else if (strcmp(s, "--cflags") == 0) {
            o->cflags = argv[++i];
        } else if (strcmp(s, "--input-shape") == 0) {
            o->a.input_shape = argv[++i];
            if (!cli_input_shape_ok("compile", o->a.input_shape))
                return EXIT_USAGE;
        } else if (strcmp(s, "--batch") == 0) {
            if (parse_int(argv[++i], &o->batch))
                return usage_error("compile", "--batch needs a positive integer, got '%s'",
                                   argv[i]);
        } else if (strcmp(s, "--emit") == 0) {
            v = argv[++i];
            if (strcmp(v, "exe") == 0)
                o->emit = EMIT_EXE;
            else if (strcmp(v, "c") == 0)
                o->emit = EMIT_C;
            else if (strcmp(v, "obj") == 0)
                o->emit = EMIT_OBJ;
            else if (strcmp(v, "lib") == 0)
                o->emit = EMIT_LIB;
            else
                return usage_error("compile", "unknown --emit '%s' (exe, c, obj or lib)", v);
        } else if (strcmp(s, "--threads") == 0) {
            o->threads = true;
        } else if (strcmp(s, "--train") == 0) {
            o->train = true;
        } else if (strcmp(s, "--external-weights") == 0) {
            o->external = true;
        } else if (s[0] == '-' && s[1]) {
            return usage_error("compile", "unknown option '%s'", s);
        } else if (o->a.file) {
            return usage_error("compile", "unexpected argument '%s' (one model file only)", s);
        } else {
            o->a.file = s;
        }
    }
    if (!o->a.file)
        return usage_error("compile", "%s", "missing FILE.c or MODEL.safetensors");
    if (!o->a.entry[0])
        return usage_error("compile", "%s", "--entry needs a non-empty function name");
    if (o->emit == EMIT_EXE && (o->train || o->external))
        return usage_error("compile", "%s",
                           "--train and --external-weights apply to --emit c, obj and lib");
    char ident[64];
    if (o->name && !nncc_aot_ident(o->name, ident, sizeof ident))
        return usage_error("compile", "--name '%s' is not a C identifier (letters, digits and "
                           "'_', starting with a letter, at most 40)", o->name);
    if (o->out && !*o->out)
        return usage_error("compile", "%s", "-o needs a non-empty path");
    return -1;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* The deployment compiler: $NNCC_CC, else the platform's cc, else clang.
 * Unlike the JIT (clang first), artifacts prefer cc: GCC's -O2 keeps the
 * specialized kernels compact (Clang's unroller can triple the code of a
 * small model) at about the same speed. */
static const char *find_cc(void)
{
    const char *env = getenv("NNCC_CC");
    if (env && *env)
        return env;
    char found[4400];
    return nncc_find_on_path("cc", found, sizeof found) ? "cc" : "clang";
}

/* Runs argv (no shell), its output going to ours; 0 when it exits 0. */
static int spawn(char *const argv[])
{
    pid_t pid;
    int err = posix_spawnp(&pid, argv[0], NULL, NULL, argv, environ);
    if (err) {
        fprintf(stderr, "nncc compile: cannot run '%s': %s\n", argv[0], strerror(err));
        return -1;
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) {
            fprintf(stderr, "nncc compile: waiting for '%s': %s\n", argv[0], strerror(errno));
            return -1;
        }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "nncc compile: '%s' failed (%s %d)\n", argv[0],
                WIFEXITED(status) ? "exit" : "signal",
                WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
        return -1;
    }
    return 0;
}

static int write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    bool ok = f && fwrite(data, 1, len, f) == len;
    if (f && fclose(f) != 0)
        ok = false;
    if (!ok) {
        fprintf(stderr, "nncc compile: cannot write '%s': %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* Writes a file inside the temporary folder. */
static int write_in(const char *dir, const char *name, const void *data, size_t len, char *path,
                    size_t size)
{
    snprintf(path, size, "%s/%s", dir, name);
    return write_file(path, data, len);
}

/* Moves a finished file into place (copying when rename cannot). */
static int place(const char *from, const char *to)
{
    if (rename(from, to) == 0)
        return 0;
    size_t len;
    char *data = nncc_read_file(from, &len);
    int rc = data ? write_file(to, data, len) : -1;
    if (!data)
        fprintf(stderr, "nncc compile: %s\n", nncc_last_error());
    if (!rc) {
        struct stat st;
        if (stat(from, &st) == 0)
            chmod(to, st.st_mode & 0777);
    }
    free(data);
    return rc;
}

/* Removes the temporary folder and the files in it (no subfolders). */
static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[4400];
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
    if (d)
        closedir(d);
    rmdir(dir);
}

static long long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

/* Runs the compiler: cc FLAGS[ extra] -I dir ARGS... (ARGS NULL-terminated). */
static int run_cc(const char *cc, const char *flags, const char *extra, const char *dir,
                  const char *const *args)
{
    char inc[4200];
    snprintf(inc, sizeof inc, "-I%s", dir);
    char *words = malloc(strlen(flags) + strlen(extra) + 2);
    if (!words) {
        fprintf(stderr, "nncc compile: out of memory\n");
        return -1;
    }
    sprintf(words, "%s %s", flags, extra);
    char *argv[80];
    int argc = 0;
    argv[argc++] = (char *)cc;
    for (char *t = strtok(words, " \t\n"); t && argc < 56; t = strtok(NULL, " \t\n"))
        argv[argc++] = t;
    argv[argc++] = inc;
    for (int i = 0; args[i] && argc < 79; i++)
        argv[argc++] = (char *)args[i];
    argv[argc] = NULL;
    int rc = spawn(argv);
    free(words);
    return rc;
}

/* The standalone program's support files (codegen/aot/, embedded in
 * libnncc), written next to the generated code; the .c ones are compiled. */
static const struct {
    const char *name, *text;
    const size_t *len;
} support[] = {
    {"deploy.h", nncc_aot_deploy_h_text, &nncc_aot_deploy_h_len},
    {"formats.h", nncc_aot_formats_h_text, &nncc_aot_formats_h_len},
    {"formats.c", nncc_aot_formats_text, &nncc_aot_formats_len},
    {"deploy_inflate.c", nncc_aot_deploy_inflate_text, &nncc_aot_deploy_inflate_len},
    {"deploy_read.c", nncc_aot_deploy_read_text, &nncc_aot_deploy_read_len},
    {"deploy_main.c", nncc_aot_deploy_main_text, &nncc_aot_deploy_main_len},
};
#define N_SUPPORT (sizeof support / sizeof *support)

/* Compiles and links or archives in dir; the artifact ends at `target`.
 * The standalone program's support code is built for size (-Os): it only
 * parses files, and the artifact must stay close to the weights' size. */
static int build(const struct copts *o, const char *cc, const char *dir, const char *name,
                 const char *target)
{
    char c_path[4200], glue[2][4200], obj_path[4200], out_path[4200], sup[N_SUPPORT][4200];
    snprintf(c_path, sizeof c_path, "%s/%s.c", dir, name);
    snprintf(glue[0], sizeof glue[0], "%s/%s_glue.c", dir, name);
    snprintf(glue[1], sizeof glue[1], "%s/%s_glue.o", dir, name);
    snprintf(obj_path, sizeof obj_path, "%s/%s.o", dir, name);
    snprintf(out_path, sizeof out_path, "%s/artifact.out", dir);
    char flags[2048];
    snprintf(flags, sizeof flags, "%s%s", o->cflags ? o->cflags : "-O2 -march=native",
             o->threads ? " -fopenmp" : "");
    if (o->emit == EMIT_EXE) {
        const char *small = "-Os -fno-asynchronous-unwind-tables";
        const char *args[N_SUPPORT + 8] = {"-s", "-o", out_path, c_path, glue[1]};
        size_t nargs = 5;
        for (size_t i = 0; i < N_SUPPORT; i++) {
            size_t n = strlen(support[i].name);
            if (support[i].name[n - 1] != 'c')
                continue; /* a header */
            snprintf(sup[i], sizeof sup[i], "%s/%.*so", dir, (int)(n - 1), support[i].name);
            char src[4200];
            snprintf(src, sizeof src, "%s/%s", dir, support[i].name);
            const char *cargs[] = {"-c", "-o", sup[i], src, NULL};
            if (run_cc(cc, flags, small, dir, cargs))
                return -1;
            args[nargs++] = sup[i];
        }
        const char *gargs[] = {"-c", "-o", glue[1], glue[0], NULL};
        if (run_cc(cc, flags, small, dir, gargs))
            return -1;
        /* -s: the artifact is code and weights, no symbols */
        args[nargs++] = "-lm";
        args[nargs] = NULL;
        if (run_cc(cc, flags, "-fno-asynchronous-unwind-tables", dir, args))
            return -1;
        return place(out_path, target);
    }
    const char *args[] = {"-c", "-o", obj_path, c_path, NULL};
    if (run_cc(cc, flags, "", dir, args))
        return -1;
    if (o->emit == EMIT_LIB) {
        const char *ar = getenv("AR");
        char *ar_argv[] = {(char *)(ar && *ar ? ar : "ar"), "rcs", out_path, obj_path, NULL};
        return spawn(ar_argv) ? -1 : place(out_path, target);
    }
    return place(obj_path, target);
}


/* What codegen/aot.c needs of model m: its inference forward and, with
 * --train, its training step, lowered by the pipeline (plans[0] and
 * plans[1..2]), its weights in layer order (am->weights, malloc'd) and
 * its optimizer state. */
static enum nncc_status aot_model(nncc_model *m, bool train, struct ir_plan plans[3],
                                  struct nncc_aot_model *am)
{
    memset(am, 0, sizeof *am);
    am->name = m->name;
    int cap = 0;
    for (int i = 0; i < m->n_layers; i++)
        cap += m->layers[i]->n_weights;
    if (!(am->weights = malloc(sizeof *am->weights * (size_t)(cap + 1))))
        return nncc_fail(NNCC_ERR_NOMEM, "compile: out of memory");
    for (int i = 0; i < m->n_layers; i++)
        for (int k = 0; k < m->layers[i]->n_weights; k++)
            am->weights[am->n_weights++] = m->layers[i]->weights[k];
    struct nncc_lower_opts lo = {.model_name = m->name};
    enum nncc_status st = nncc_lower(&m->program, &lo, plans);
    if (st)
        return st;
    am->forward = &plans[0];
    if (!train)
        return NNCC_OK;
    struct nncc_train_state *t = m->train;
    if (!t)
        return nncc_fail(NNCC_ERR_ARG,
                         "compile --train: model \"%s\" is not compiled: save it after "
                         "nncc_compile() (nncc_save), or call nncc_compile() in the entry",
                         m->name);
    struct nncc_shape target = nncc_train_default_target(m);
    struct nncc_train_spec spec = nncc_train_spec_of(m, target);
    lo.train = &spec;
    if ((st = nncc_lower(&m->program, &lo, plans + 1)) != NNCC_OK)
        return st;
    am->train = &plans[1];
    am->slots = t->slots;
    am->n_slots = t->n_params * t->n_slots;
    am->target = target;
    am->optimizer = t->opts.optimizer.kind;
    am->loss = t->opts.loss;
    am->n_metrics = t->n_metrics;
    for (int k = 0; k < t->n_metrics; k++)
        am->metric_names[k] = t->metric_names[k];
    am->learning_rate = t->learning_rate;
    am->iterations = t->iterations;
    return NNCC_OK;
}

int cmd_compile(int argc, char **argv)
{
    struct copts o = {0};
    int rc = parse(argc, argv, &o);
    if (rc >= 0)
        return rc;

    /* Names: the stem of the outputs and the C prefix. */
    char stem[4096], name[64], dir[4096];
    if (o.out) {
        snprintf(stem, sizeof stem, "%s", o.out);
        if (o.emit != EMIT_EXE) {
            size_t n = strlen(stem);
            if (n > 2 && (ends_with(stem, ".c") || ends_with(stem, ".h") || ends_with(stem, ".o") ||
                          ends_with(stem, ".a")))
                stem[n - 2] = '\0';
        }
    } else {
        stem[0] = '\0';
    }
    char *slash = strrchr(stem, '/');
    const char *base = slash ? slash + 1 : stem;
    if (slash)
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - stem), stem);
    else
        snprintf(dir, sizeof dir, ".");
    if (o.emit == EMIT_LIB && strncmp(base, "lib", 3) == 0 && base[3])
        base += 3;

    size_t flen = strlen(o.a.file);
    bool saved = cli_is_model_file(o.a.file);
    /* An ONNX file has its weights too: its initializers. */
    bool onnx = flen > 5 && strcmp(o.a.file + flen - 5, ".onnx") == 0;
    void *handle = NULL;
    nncc_model *m = saved ? nncc_load(o.a.file) : load_model(&o.a, &handle);
    if (!m) {
        if (saved)
            fprintf(stderr, "nncc: %s\n", nncc_last_error());
        if (handle)
            nncc_jit_unload(handle);
        return EXIT_MODEL;
    }
    rc = EXIT_MODEL;
    char tmpdir[4200] = "";
    struct nncc_aot g = {0};
    if (o.weights) {
        if (nncc_load_weights(m, o.weights) != NNCC_OK) {
            fprintf(stderr, "nncc: %s\n", nncc_last_error());
            goto done;
        }
    } else if (!saved && !onnx) {
        fprintf(stderr, "nncc compile: warning: no --weights: %s's model keeps the weights its "
                "initializers drew (graph seed 0 unless the file sets one)\n", o.a.file);
    }
    if (o.name)
        snprintf(name, sizeof name, "%s", o.name);
    else
        nncc_aot_ident(*base ? base : nncc_model_name(m), name, sizeof name);
    if (!*base)
        base = name;
    if (o.emit == EMIT_EXE && (m->n_inputs != 1 || m->n_outputs != 1)) {
        fprintf(stderr, "nncc compile: model \"%s\" has %d inputs and %d outputs; the standalone "
                "program takes one of each (use --emit c, obj or lib)\n", m->name, m->n_inputs,
                m->n_outputs);
        goto done;
    }
    /* The header's file name must be safe inside #include "...".  The
     * program's own files are model.c, model.h and model_glue.c whatever
     * NAME is: NAME "deploy" or "formats" would overwrite the support files
     * of that name written beside them.  No support file is model.*. */
    const char *file_stem = o.emit == EMIT_EXE ? "model" : name;
    char header[300];
    snprintf(header, sizeof header, "%s.h", o.emit == EMIT_EXE ? file_stem : base);
    struct nncc_aot_opts ao = {.name = name, .batch = o.batch, .external_weights = o.external,
                               .origin = o.a.file, .header = header};
    struct ir_plan plans[3] = {0};
    struct nncc_aot_model am;
    enum nncc_status gst = aot_model(m, o.train, plans, &am);
    if (!gst)
        gst = nncc_aot_generate(&am, &ao, &g);
    free(am.weights);
    for (int k = 0; k < 3; k++)
        ir_plan_free(&plans[k]);
    if (gst != NNCC_OK) {
        fprintf(stderr, "nncc compile: %s: %s\n", o.a.file, nncc_last_error());
        goto done;
    }

    char path[4400], target[4400];
    const char *ext = o.emit == EMIT_C ? ".c" : o.emit == EMIT_OBJ ? ".o" : ".a";
    if (o.emit == EMIT_EXE)
        snprintf(target, sizeof target, "%s", o.out ? o.out : name);
    else
        snprintf(target, sizeof target, "%s/%s%s%s", dir, o.emit == EMIT_LIB ? "lib" : "", base,
                 ext);
    if (o.emit != EMIT_EXE) {
        snprintf(path, sizeof path, "%s/%s", dir, header);
        if (write_file(path, g.h, g.h_len))
            goto done;
        if (o.external) {
            snprintf(path, sizeof path, "%s/%s.bin", dir, base);
            if (write_file(path, g.data, g.data_len))
                goto done;
        }
    }
    if (o.emit == EMIT_C) {
        if (write_file(target, g.c, g.c_len))
            goto done;
    } else {
        const char *cc = find_cc();
        const char *tmp = getenv("TMPDIR");
        snprintf(tmpdir, sizeof tmpdir, "%s/nncc-compile-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(tmpdir)) {
            fprintf(stderr, "nncc compile: cannot make a folder '%s': %s\n", tmpdir,
                    strerror(errno));
            tmpdir[0] = '\0';
            goto done;
        }
        char p2[4400], c_name[320], glue_name[320];
        snprintf(c_name, sizeof c_name, "%s.c", file_stem);
        snprintf(glue_name, sizeof glue_name, "%s_glue.c", file_stem);
        if (write_in(tmpdir, header, g.h, g.h_len, p2, sizeof p2) ||
            write_in(tmpdir, c_name, g.c, g.c_len, p2, sizeof p2))
            goto done;
        if (o.emit == EMIT_EXE) {
            for (size_t i = 0; i < N_SUPPORT; i++)
                if (write_in(tmpdir, support[i].name, support[i].text, *support[i].len, p2,
                             sizeof p2))
                    goto done;
            if (write_in(tmpdir, glue_name, g.glue, g.glue_len, p2, sizeof p2))
                goto done;
        }
        if (build(&o, cc, tmpdir, file_stem, target))
            goto done;
    }
    long long size = file_size(target);
    printf("%s: %lld bytes (weights %lld bytes%s)\n", target, size, (long long)g.weight_bytes,
           o.external ? ", in a separate .bin" : "");
    rc = 0;
done:
    if (tmpdir[0])
        remove_dir(tmpdir);
    nncc_aot_free(&g);
    nncc_model_free(m);
    if (handle)
        nncc_jit_unload(handle);
    return rc;
}
