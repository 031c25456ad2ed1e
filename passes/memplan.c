/*
 * memplan.c — memory planning: which workspace floats each value uses.
 *
 * Every value a kernel computes into the workspace (not an input, a
 * parameter or optimizer slot, a view, or a program output, which live in
 * the caller's in[], p[] and out[]) gets a region in one of two arenas:
 * the batched arena for values with a batch dimension, sized in floats per
 * sample (a value at offset o starts at `ws + fixed + n·o` for a batch of
 * n, so regions disjoint per sample stay disjoint for every n), and the
 * fixed arena for values without one (weight gradients, the loss, metrics),
 * at `ws + o`.  Regions are reused by liveness: a value is live from the
 * node that computes it to the last node that reads it, directly or
 * through a chain of views (a view shares its base's memory, so reading
 * the view reads the base); a program output that is a view of a value is
 * copied out after the last kernel, so that value lives to the end.  Two
 * values may share floats only when one's last read comes strictly before
 * the other is computed: a kernel reads its inputs while it writes its
 * output, so an input and the output of the same node never overlap, which
 * is also what the kernels' `restrict` parameters promise the compiler.
 *
 * Ops that write memory other than their output write parameters and
 * slots only (UPDATE: the weight and its slots; BN_MOVING: the moving
 * statistics), which are not workspace.  An op writing a workspace input
 * in place would still be safe: that input is read by the same node, so
 * it is live there and nothing else occupies its floats.  Every kernel
 * writes its whole output before reading any of it (accumulators are
 * zeroed first), so a region's old contents never matter.
 *
 * Placement is greedy by size (Pisarchyk and Lee, "Efficient memory
 * management for deep neural net inference", 2020): values are placed
 * largest first, each in the smallest gap left between the already placed
 * values whose lives overlap its own, or after the last of them.  Region
 * starts are multiples of 16 floats (64 bytes), and so are both arena
 * sizes, so that vector kernels see aligned rows in either arena and in
 * the kernel scratch space that codegen puts after the batched arena.
 *
 * Fusion (passes/fuse.c): a group's result is written by the group's head
 * kernel, so it is live from the head on (the head still reads its inputs
 * while it writes the result); the other values of the group, the head's
 * own included, are never materialized and get no region.  Reads by
 * absorbed nodes are charged to their own, later, positions, which only
 * lengthens lives.
 *
 * Requires: a plan whose program is verified (topological order, shapes
 * known), with its fusion groups or none (groups NULL); members' values
 * are read by no node outside their group.  Guarantees: the plan's `mem`
 * (ir/plan.h); changes nothing in the program.  The last pass of
 * nncc_lower (passes/pipeline.c); NNCC_DUMP=memplan (or all) prints it.
 */
#include <stdlib.h>
#include <string.h>
#include "passes/passes.h"

#define ALIGN 16 /* floats: 64 bytes */

static int64_t align_up(int64_t v) { return (v + ALIGN - 1) / ALIGN * ALIGN; }

static bool is_output(const struct ir_program *p, const nncc_tensor *t)
{
    for (int k = 0; k < p->n_outputs; k++)
        if (p->outputs[k] == t)
            return true;
    return false;
}

/* The value whose memory t is: t itself, or the base of its view chain. */
static const nncc_tensor *base_of(const nncc_tensor *t)
{
    while (ir_op(t->producer->op)->view)
        t = t->producer->in[0];
    return t;
}

/* Whether the value computed by node n lives in the workspace (codegen/
 * emit.c gives the others in[], p[], out[] or their base's memory). */
static bool needs_region(const struct ir_program *p, const struct ir_node *n)
{
    return n->op != IR_INPUT && n->op != IR_PARAM && !ir_op(n->op)->view &&
           !is_output(p, n->out);
}

/* A value to sort: by key, ties by program order (qsort is not stable,
 * and plans must not depend on its whims). */
struct item {
    int64_t key;
    int i;
};

static int by_key(const void *a, const void *b)
{
    const struct item *x = a, *y = b;
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

enum nncc_status pass_memplan(struct ir_plan *pl)
{
    const struct ir_program *p = &pl->program;
    const struct ir_group *fused = pl->groups;
    struct ir_memplan *plan = &pl->mem;
    int n = p->n_nodes;
    ir_memplan_free(plan);
    plan->n = n;
    size_t cnt = (size_t)n + 1; /* never 0, so calloc never returns a legitimate NULL */
    plan->offset = malloc(cnt * sizeof *plan->offset);
    plan->size = calloc(cnt, sizeof *plan->size);
    plan->last = malloc(cnt * sizeof *plan->last);
    plan->batched_arena = calloc(cnt, sizeof *plan->batched_arena);
    plan->first = malloc(cnt * sizeof *plan->first);
    int *local = malloc(((size_t)p->g->n_nodes + 1) * sizeof *local); /* graph id → index */
    struct item *order = malloc(cnt * sizeof *order); /* values needing a region */
    struct item *near = malloc(cnt * sizeof *near);   /* placed values alive with one */
    if (!plan->offset || !plan->size || !plan->last || !plan->batched_arena || !plan->first ||
        !local || !order || !near) {
        free(local);
        free(order);
        free(near);
        ir_memplan_free(plan);
        return nncc_fail(NNCC_ERR_NOMEM, "out of memory (memory planning)");
    }

    /* Liveness: each value's last reader, reads through views charged to
     * the base.  (A value's id is its producer's node id; in a verified
     * program every input comes from an earlier node of the program.) */
    for (int i = 0; i < p->g->n_nodes; i++)
        local[i] = -1;
    for (int i = 0; i < n; i++) {
        local[p->nodes[i]->out->id] = i;
        plan->last[i] = i; /* a value nobody reads lives while it is written */
        plan->first[i] = i;
        plan->offset[i] = -1;
    }
    /* Fusion: a group's result is written by its head's kernel, earlier. */
    for (int i = 0; fused && i < n; i++)
        for (int r = 0; r < 2; r++) {
            const nncc_tensor *t = r ? ir_group_second(&fused[i]) : fused[i].result;
            if (t)
                plan->first[local[t->id]] = i;
        }
    for (int i = 0; i < n; i++) {
        const struct ir_node *nd = p->nodes[i];
        if (ir_op(nd->op)->view)
            continue; /* no kernel: its readers count for the base instead */
        for (int k = 0; k < nd->n_in; k++) {
            int b = local[base_of(nd->in[k])->id];
            NNCC_ASSERT(b >= 0 && b < i);
            if (plan->last[b] < i)
                plan->last[b] = i;
        }
    }
    for (int k = 0; k < p->n_outputs; k++) { /* copied out after the last kernel */
        int b = local[base_of(p->outputs[k])->id];
        NNCC_ASSERT(b >= 0);
        plan->last[b] = n;
    }

    /* Sizes, and the one-region-per-value totals for reports. */
    int n_order = 0;
    for (int i = 0; i < n; i++) {
        const struct ir_node *nd = p->nodes[i];
        if (!needs_region(p, nd))
            continue;
        if (fused && ((fused[i].kind == IR_GROUP_MEMBER && plan->first[i] == i) ||
                      (fused[i].result && fused[i].result != nd->out)))
            continue; /* fused away: the group's kernel writes only its result */
        const nncc_tensor *t = nd->out;
        int64_t size = ir_shape_numel(t->shape, t->batched ? 1 : 0);
        NNCC_ASSERT(size >= 0);
        plan->size[i] = size;
        plan->batched_arena[i] = t->batched;
        *(t->batched ? &plan->unplanned_per_sample : &plan->unplanned_fixed) += size;
        order[n_order++] = (struct item){.key = -size, .i = i}; /* largest first */
    }

    /* Greedy by size: each value goes into the smallest gap between the
     * placed values it overlaps in time (same arena), else after them. */
    qsort(order, (size_t)n_order, sizeof *order, by_key);
    for (int a = 0; a < n_order; a++) {
        int v = order[a].i;
        int n_near = 0;
        for (int b = 0; b < a; b++) {
            int u = order[b].i;
            if (plan->batched_arena[u] == plan->batched_arena[v] &&
                plan->first[u] <= plan->last[v] && plan->first[v] <= plan->last[u])
                near[n_near++] = (struct item){.key = plan->offset[u], .i = u};
        }
        qsort(near, (size_t)n_near, sizeof *near, by_key);
        int64_t end = 0, best = -1, best_gap = INT64_MAX;
        for (int b = 0; b < n_near; b++) {
            int u = near[b].i;
            int64_t start = align_up(end), gap = plan->offset[u] - start;
            if (gap >= plan->size[v] && gap < best_gap) {
                best = start;
                best_gap = gap;
            }
            if (plan->offset[u] + plan->size[u] > end)
                end = plan->offset[u] + plan->size[u];
        }
        plan->offset[v] = best >= 0 ? best : align_up(end);
        int64_t top = align_up(plan->offset[v] + plan->size[v]);
        int64_t *arena = plan->batched_arena[v] ? &plan->per_sample_size : &plan->fixed_size;
        if (top > *arena)
            *arena = top;
    }
    free(local);
    free(order);
    free(near);
    return NNCC_OK;
}
