/*
 * pipeline.c — the compiler's path, readable top to bottom.
 *
 *   model program ─ shapes ─ [autodiff] ─ fuse ─ tile ─ memplan ─► plan(s)
 *
 * nncc_lower() is the only driver of the passes: fit and evaluate (the
 * training and evaluation steps), predict (the inference forward), `nncc
 * compile`, `nncc bench`, `nncc graph` and `nncc emit-c` all call it, and
 * code generation (codegen/) receives the finished plans.  Shapes and
 * autodiff make programs: autodiff appends the training nodes to the
 * model's graph and returns two programs, the training step and the
 * evaluation step.  Fuse, tile and memplan annotate each plan rather than
 * rewrite it, because a model's programs share their nodes (ir/plan.h).
 *
 * After every pass the verifier checks each program, and NNCC_DUMP=all
 * (or a comma-separated list of pass names) prints the plan at that point
 * to stderr.  `stop_after` ends the path early, for `nncc graph --after`.
 */
#include <stdlib.h>
#include <string.h>
#include "passes/passes.h"

const char *const nncc_pass_names[] = {"shapes", "autodiff", "fuse", "tile", "memplan", NULL};

/* Whether NNCC_DUMP asks for the plans after this pass ("all", or the
 * name in a comma-separated list). */
static bool dump_wanted(const char *pass)
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

/* What a pass left: the program, then its own decisions. */
static void dump(const struct ir_plan *plan, const char *model, const char *which,
                 const char *pass)
{
    fprintf(stderr, "; model \"%s\", %s, after pass %s\n", model, which, pass);
    if (strcmp(pass, "fuse") == 0)
        ir_plan_print_groups(plan, stderr);
    else if (strcmp(pass, "tile") == 0)
        ir_plan_print_tiles(plan, stderr);
    else if (strcmp(pass, "memplan") == 0)
        ir_plan_print_memory(plan, stderr);
    else
        ir_print(&plan->program, stderr);
}

/* Verifies every plan after `pass`, dumps them if asked; true when the
 * path should go on. */
static bool after(struct ir_plan *plans, int n, const struct nncc_lower_opts *o, const char *pass,
                  enum nncc_status *st)
{
    static const char *const which[2][2] = {{"inference", ""}, {"training step", "evaluation step"}};
    for (int k = 0; k < n && !*st; k++)
        *st = ir_verify(&plans[k].program, pass);
    if (*st)
        return false;
    if (dump_wanted(pass))
        for (int k = 0; k < n; k++)
            dump(&plans[k], o->model_name ? o->model_name : "", which[o->train != NULL][k], pass);
    return !(o->stop_after && strcmp(o->stop_after, pass) == 0);
}

enum nncc_status nncc_lower(const struct ir_program *model, const struct nncc_lower_opts *o,
                            struct ir_plan plans[2])
{
    memset(plans, 0, 2 * sizeof *plans);
    int n = 1;
    enum nncc_status st = ir_program_init(&plans[0].program, model->g, model->inputs,
                                          model->n_inputs, model->outputs, model->n_outputs);
    if (!st)
        st = pass_shapes(&plans[0].program);
    if (!after(plans, n, o, "shapes", &st))
        return st;

    if (o->train) {
        struct ir_program fwd = plans[0].program;
        /* fwd owns the arrays now: a failed autodiff leaves plans[0]
         * empty, not pointing at them (ir_plan_free would free them twice). */
        memset(&plans[0].program, 0, sizeof plans[0].program);
        st = nncc_autodiff(&fwd, o->train, &plans[0].program, &plans[1].program);
        ir_program_free(&fwd);
        plans[0].step = plans[1].step = true;
        n = 2;
        if (!after(plans, n, o, "autodiff", &st))
            return st;
    }

    for (int k = 0; k < n && !st; k++)
        st = pass_fuse(&plans[k]);
    if (!after(plans, n, o, "fuse", &st))
        return st;

    for (int k = 0; k < n && !st; k++)
        st = pass_tile(&plans[k]);
    if (!after(plans, n, o, "tile", &st))
        return st;

    for (int k = 0; k < n && !st; k++)
        st = pass_memplan(&plans[k]);
    after(plans, n, o, "memplan", &st);
    return st;
}
