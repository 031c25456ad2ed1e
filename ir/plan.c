/*
 * plan.c — the plan's helpers: kind names, a group's epilogue and second
 * value, freeing, and the text forms NNCC_DUMP and `nncc graph --after`
 * print (ir/plan.h says what a plan is).
 */
#include <stdlib.h>
#include <string.h>
#include "ir/plan.h"

const char *ir_group_kind_name(enum ir_group_kind kind)
{
    static const char *const names[] = {
        "none", "member",
#define IR_GROUP_NAME(id, name) name,
        IR_GROUP_KINDS(IR_GROUP_NAME)
#undef IR_GROUP_NAME
    };
    _Static_assert(sizeof names / sizeof names[0] == IR_GROUP_KIND_COUNT, "a name per kind");
    return (unsigned)kind < IR_GROUP_KIND_COUNT ? names[kind] : "?";
}

const struct ir_epilogue *ir_group_epilogue(const struct ir_group *g)
{
    static const struct ir_epilogue none;
    switch (g->kind) {
    case IR_GROUP_BIAS_ACT:
    case IR_GROUP_DACT:
        return &g->epi;
    case IR_GROUP_CONV_POOL:
        return &g->conv_pool.epi;
    case IR_GROUP_POOL_WGRAD:
        return &g->pool_wgrad.epi;
    default:
        return &none;
    }
}

const nncc_tensor *ir_group_second(const struct ir_group *g)
{
    switch (g->kind) {
    case IR_GROUP_CONV_POOL:
        return g->conv_pool.argmax;
    case IR_GROUP_POOL_KEEP:
        return g->pool_keep.argmax;
    case IR_GROUP_POOL_WGRAD:
        return g->pool_wgrad.bias_grad;
    default:
        return NULL;
    }
}

void ir_memplan_free(struct ir_memplan *m)
{
    free(m->offset);
    free(m->size);
    free(m->last);
    free(m->batched_arena);
    free(m->first);
    memset(m, 0, sizeof *m);
}

void ir_plan_free(struct ir_plan *plan)
{
    ir_program_free(&plan->program);
    free(plan->groups);
    free(plan->tiles);
    ir_memplan_free(&plan->mem);
    memset(plan, 0, sizeof *plan);
}

static void print_epilogue(const struct ir_epilogue *e, FILE *out)
{
    if (e->bias)
        fprintf(out, ", + %%%d", e->bias->id);
    if (e->has_act)
        fprintf(out, ", %s", nncc_activation_name(e->act));
    if (e->softmax)
        fprintf(out, ", softmax");
    if (e->has_dact)
        fprintf(out, ", * %s'(%%%d)", nncc_activation_name(e->dact), e->dact_y->id);
}

void ir_plan_print_groups(const struct ir_plan *plan, FILE *out)
{
    const struct ir_program *p = &plan->program;
    if (!plan->groups)
        return;
    for (int i = 0; i < p->n_nodes; i++) {
        const struct ir_group *g = &plan->groups[i];
        if (g->kind == IR_GROUP_NONE || g->kind == IR_GROUP_MEMBER)
            continue;
        const struct ir_node *n = p->nodes[i];
        char label[200];
        fprintf(out, "  %%%d %s %s: %s", n->out->id, ir_op(n->op)->name,
                ir_node_label(n, label, sizeof label), ir_group_kind_name(g->kind));
        print_epilogue(ir_group_epilogue(g), out);
        if (g->kind == IR_GROUP_CONV_POOL)
            fprintf(out, ", maxpool %%%d", g->conv_pool.pool->out->id);
        if (g->kind == IR_GROUP_POOL_WGRAD)
            fprintf(out, ", filter gradient %%%d", g->pool_wgrad.wgrad->out->id);
        if (g->kind == IR_GROUP_CHAIN)
            for (int k = 0; k < g->chain.n; k++)
                fprintf(out, ", %s %s", ir_op(g->chain.node[k]->op)->name,
                        nncc_activation_name(g->chain.node[k]->a.act));
        fprintf(out, " -> %%%d", g->result->id);
        if (ir_group_second(g))
            fprintf(out, ", %%%d", ir_group_second(g)->id);
        fprintf(out, "; absorbs");
        for (int k = i + 1; k < p->n_nodes; k++)
            if (plan->groups[k].kind == IR_GROUP_MEMBER && plan->groups[k].head == i)
                fprintf(out, " %%%d", p->nodes[k]->out->id);
        fprintf(out, "\n");
    }
}

void ir_plan_print_tiles(const struct ir_plan *plan, FILE *out)
{
    static const char *const axis[] = {"-", "rows", "images", "rows of dw",
                                       "8 runs of rows (partial sums)"};
    const struct ir_program *p = &plan->program;
    for (int i = 0; plan->tiles && i < p->n_nodes; i++) {
        const struct ir_tile *t = &plan->tiles[i];
        if (t->parallel == IR_PAR_NONE)
            continue;
        const struct ir_node *n = p->nodes[i];
        char label[200];
        fprintf(out, "  %%%d %s %s: parallel over %s", n->out->id, ir_op(n->op)->name,
                ir_node_label(n, label, sizeof label), axis[t->parallel]);
        if (t->tile_rows)
            fprintf(out, ", tiles of %lld rows", (long long)t->tile_rows);
        if (t->pointwise)
            fprintf(out, ", pointwise (no columns)");
        if (t->direct)
            fprintf(out, ", direct (fields read in place)");
        fprintf(out, ", one thread below %lld multiply-adds\n", (long long)t->min_work);
    }
}

void ir_plan_print_memory(const struct ir_plan *plan, FILE *out)
{
    const struct ir_program *p = &plan->program;
    const struct ir_memplan *m = &plan->mem;
    if (m->n == 0)
        return;
    fprintf(out, "memory plan: fixed arena %lld floats, batched arena %lld floats per sample "
                 "(one region per value: %lld and %lld)\n",
            (long long)m->fixed_size, (long long)m->per_sample_size,
            (long long)m->unplanned_fixed, (long long)m->unplanned_per_sample);
    for (int i = 0; i < p->n_nodes; i++) {
        if (m->offset[i] < 0)
            continue;
        const struct ir_node *n = p->nodes[i];
        fprintf(out, "  %%%-5d %-7s [%lld, %lld)%s  live %d..%d  # %s\n", n->out->id,
                m->batched_arena[i] ? "batched" : "fixed", (long long)m->offset[i],
                (long long)(m->offset[i] + m->size[i]), m->batched_arena[i] ? " per sample" : "",
                m->first[i], m->last[i], n->name);
    }
}
