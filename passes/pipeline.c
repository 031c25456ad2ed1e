/*
 * pipeline.c — the pass list, readable top to bottom.
 *
 * A model's program goes through shape inference here.  After every pass
 * the verifier runs, and NNCC_DUMP=all (or a pass name, or a
 * comma-separated list of them) prints the IR to stderr; NNCC_DUMP=emit
 * prints it just before code generation.
 *
 * The other passes run on programs this list never sees, because those
 * programs are built later: autodiff (passes/autodiff.c) makes the training
 * and evaluation steps when fit or evaluate first needs them
 * (runtime/train/train.c); fusion (passes/fuse.c), tiling (passes/tile.c) and
 * memory planning (passes/memplan.c, which needs the fusion groups) run on
 * each final program, inference or step, right before code generation:
 * the code generator (codegen/emit.c) calls them for every entry it emits.
 * They annotate the program (groups, schedules, a plan) rather than
 * rewrite it, because a model's programs share their nodes.
 * NNCC_DUMP=fuse, tile and memplan print what they decided.
 */
#include <stdlib.h>
#include <string.h>
#include "passes.h"

struct pass {
    const char *name;
    enum nncc_status (*run)(struct ir_program *p);
};

static const struct pass pipeline[] = {
    {"shapes", pass_shapes},
};

bool nncc_dump_wanted(const char *pass)
{
    const char *spec = getenv("NNCC_DUMP");
    if (!spec || !*spec)
        return false;
    if (strcmp(spec, "all") == 0)
        return true;
    size_t n = strlen(pass);
    for (const char *s = spec; (s = strstr(s, pass)) != NULL; s += n) {
        bool starts = s == spec || s[-1] == ',';
        bool ends = s[n] == '\0' || s[n] == ',';
        if (starts && ends)
            return true;
    }
    return false;
}

enum nncc_status nncc_pipeline_run(struct ir_program *p, const char *model_name)
{
    for (size_t i = 0; i < sizeof pipeline / sizeof pipeline[0]; i++) {
        enum nncc_status st = pipeline[i].run(p);
        if (st == NNCC_OK)
            st = ir_verify(p, pipeline[i].name);
        if (st != NNCC_OK)
            return st;
        if (nncc_dump_wanted(pipeline[i].name)) {
            fprintf(stderr, "; model \"%s\" after pass %s\n", model_name, pipeline[i].name);
            ir_print(p, stderr);
        }
    }
    return NNCC_OK;
}
