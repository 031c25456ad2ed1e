/*
 * export.c — `nncc export`: a model as an ONNX file.
 *
 *   nncc export FILE.c|MODEL.safetensors|FILE.onnx -o OUT.onnx [--opset N]
 *               [--entry NAME] [--input-shape SHAPES]
 *
 * The model comes from cli/common.c's load_model (FILE.c's entry, a model
 * nncc_save wrote, or an ONNX file); nncc_export_onnx
 * (runtime/io/onnx_export.c) writes it.  Exit status: 0, 1 a model or
 * export error, 2 a usage error.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "include/nncc.h"
#include "runtime/jit/jit.h"
#include "cli/cli.h"

const char usage_export[] =
    "usage: nncc export FILE.c|MODEL.safetensors|FILE.onnx -o OUT.onnx [--opset N]\n"
    "                   [--entry NAME] [--input-shape SHAPES]\n"
    "\n"
    "Writes the model at inference as an ONNX file (IR version 8).  The graph keeps\n"
    "nncc's layout at its inputs and outputs: an image input (N, H, W, C) stays NHWC,\n"
    "as nncc takes it (convolutions run NCHW inside, one transpose in and one out per\n"
    "chain); axis 0 is the dynamic batch dimension N.  Dropout is Identity, batch\n"
    "normalization uses the moving statistics.\n"
    "\n"
    "options:\n"
    "  -o OUT.onnx          the file to write (required)\n"
    "  --opset N            the default domain's opset, 13 to 17 (default 13)\n"
    "  --entry NAME         FILE.c's function returning the model (default: model)\n"
    "  --input-shape SHAPES FILE.onnx only: input shapes like 1x3x224x224[,…]\n"
    "  -h, --help           show this help\n";

/* -1 to go on, else an exit code. */
static int parse(int argc, char **argv, struct args *a, const char **out, int *opset)
{
    a->entry = "model";
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool takes = strcmp(s, "-o") == 0 || strcmp(s, "--opset") == 0 ||
                     strcmp(s, "--entry") == 0 || strcmp(s, "--input-shape") == 0;
        if (strcmp(s, "-h") == 0 || strcmp(s, "--help") == 0) {
            fputs(usage_export, stdout);
            return 0;
        } else if (takes && !v) {
            return usage_error("export", "option '%s' needs a value", s);
        } else if (strcmp(s, "-o") == 0) {
            *out = argv[++i];
        } else if (strcmp(s, "--entry") == 0) {
            a->entry = argv[++i];
        } else if (strcmp(s, "--input-shape") == 0) {
            a->input_shape = argv[++i];
            if (!cli_input_shape_ok("export", a->input_shape))
                return EXIT_USAGE;
        } else if (strcmp(s, "--opset") == 0) {
            char *end;
            errno = 0;
            long x = strtol(argv[++i], &end, 10);
            if (!*argv[i] || *end || errno || x < 13 || x > 17)
                return usage_error("export", "--opset needs 13 to 17, got '%s'", argv[i]);
            *opset = (int)x;
        } else if (s[0] == '-' && s[1]) {
            return usage_error("export", "unknown option '%s'", s);
        } else if (a->file) {
            return usage_error("export", "unexpected argument '%s' (one model file only)", s);
        } else {
            a->file = s;
        }
    }
    if (!a->file)
        return usage_error("export", "%s", "missing FILE.c, MODEL.safetensors or FILE.onnx");
    if (!*out || !**out)
        return usage_error("export", "%s", "missing -o OUT.onnx");
    if (!a->entry[0])
        return usage_error("export", "%s", "--entry needs a non-empty function name");
    return -1;
}

int cmd_export(int argc, char **argv)
{
    struct args a = {0};
    const char *out = NULL;
    int opset = 0;
    int rc = parse(argc, argv, &a, &out, &opset);
    if (rc >= 0)
        return rc;
    void *handle = NULL;
    nncc_model *m = load_model(&a, &handle);
    rc = EXIT_MODEL;
    if (m) {
        if (nncc_export_onnx(m, out, .opset = opset) == NNCC_OK) {
            printf("%s: ONNX, opset %d, layout NHWC at the boundary\n", out, opset ? opset : 13);
            rc = 0;
        } else {
            fprintf(stderr, "nncc export: %s: %s\n", a.file, nncc_last_error());
        }
        nncc_model_free(m);
    }
    if (handle)
        nncc_jit_unload(handle);
    return rc;
}
