/*
 * fuse.c — fusion: which nodes of a program run inside another node's
 * kernel, as a table of rules.
 *
 * Requires a verified program (inference, training or evaluation step) in
 * a plan.  Produces the plan's groups, one struct ir_group per node
 * (ir/plan.h: a kind per rule, with that rule's operands), and changes
 * nothing in the graph (nodes are shared between a model's programs): the
 * codegen emits the group's work in the head node's kernel, writes the
 * group's last value (`result`; a second one, ir_group_second(), for
 * pool_wgrad's bias gradient and a kept pooling argmax) there and emits
 * nothing for members, whose values are never materialized.  Fused kernels
 * compute exactly what the separate kernels did, in the same order per
 * element (pool_wgrad excepted, see there); tests compare them with the
 * unfused kernels and the reference interpreter.
 *
 * A group is a chain of nodes, each the only reader of the one before
 * (pool_wgrad: the chain's value has two readers, both absorbed; conv_pool:
 * the pooling's other readers in training are gradients that no longer
 * read the activations); values inside a group are read by nothing else
 * and are no program output.  Nodes of other groups may sit between them
 * in program order: the head's kernel writes the group's results early,
 * and the memory planner (passes/memplan.c) keeps them alive from the head
 * on.  NNCC_NO_FUSE=1 turns every rule off, NNCC_NO_FUSE=name,… those
 * rules (conv_pool and pool_wgrad included).
 *
 * Rules (in the order tried):
 *   bias_act      matmul|conv2d → bias_add [→ activation|softmax]:
 *                 bias, then the activation (row-wise softmax), applied to
 *                 each row block right after its GEMM while it is in cache.
 *                 The pre-activation value z disappears, so when
 *                 activation_grad reads z, the activation must have a
 *                 derivative computable from its output (relu, elu, selu:
 *                 y > 0 ⟺ z > 0; sigmoid, tanh, linear use y only) and
 *                 those activation_grad nodes read y instead (grad_from_y).
 *   conv_pool     (after bias_act) conv2d group → tiling maxpool2d [+ its
 *                 pool_argmax]: each tile of the convolution's output is
 *                 pooled in cache, the activations are never stored; in
 *                 training only when the pooling gradient reads the argmax
 *                 and the activation's gradient fuses into it (dact).
 *   dact          matmul_nt|conv2d_grad_input|pool2d_grad → activation_grad:
 *                 the activation's gradient multiplies the head's output
 *                 in its epilogue (per row block or per image), from y.
 *   pool_wgrad    pool2d_grad [→ activation_grad] → {conv2d_grad_filter,
 *                 bias_grad} when those are the value's only readers (the
 *                 network's first convolution) and the filter is small:
 *                 the head makes one image's gradient at a time on its
 *                 stack and adds that image's filter and bias gradients
 *                 to partial sums, so the largest tensor of the backward
 *                 pass is never written to memory.  The partial sums
 *                 change the summation order of dw and db (floating-point
 *                 reassociation, the same on any thread count).
 *   pool_keep     maxpool2d + pool_argmax of the same x (training): the
 *                 pooling's kernel also writes which cell won each window
 *                 (pool_keep.argmax), which the pooling gradient then reads instead
 *                 of searching x again.
 *   chain         add|bias_add|batchnorm|activation|activation_grad →
 *                 activation|activation_grad (up to four): one loop,
 *                 each element kept in a register through the chain.
 * The softmax/sigmoid + cross-entropy fusion with its p − y gradient is
 * made by autodiff (the stable path), not here.
 */
#include <stdlib.h>
#include <string.h>
#include "passes/passes.h"

/* Activations whose derivative is a function of their output alone. */
static bool deriv_from_output(enum nncc_activation act)
{
    switch (act) {
    case NNCC_LINEAR:
    case NNCC_RELU:
    case NNCC_ELU:
    case NNCC_SELU:
    case NNCC_SIGMOID:
    case NNCC_TANH:
        return true;
    default:
        return false;
    }
}

struct fuse_ctx {
    const struct ir_program *p;
    const char *off; /* NNCC_NO_FUSE: "1" (all rules off) or rule names, comma-separated */
    struct ir_group *f;
    int *uses;   /* per tensor id: reads in the program (+1 per program output) */
    int *reader; /* per tensor id: the program index of a node reading it */
};

/* The node reading node i's value as its input 0, when it is the value's
 * only use (no other reader, no program output), has op `op` and is in no
 * group yet; else -1. */
static int sole_reader(const struct fuse_ctx *c, int i, enum ir_op op)
{
    const nncc_tensor *t = c->p->nodes[i]->out;
    if (c->f[i].kind == IR_GROUP_MEMBER || c->uses[t->id] != 1)
        return -1;
    int j = c->reader[t->id];
    const struct ir_node *r = c->p->nodes[j];
    return r->op == op && r->in[0] == t && c->f[j].kind != IR_GROUP_MEMBER ? j : -1;
}

/* Absorbs node j into head i's group, which now ends with j's value.  The
 * head writes that value; the memory planner makes it live from the head. */
static void absorb(struct fuse_ctx *c, int i, int j)
{
    c->f[j].kind = IR_GROUP_MEMBER;
    c->f[j].head = i;
    c->f[i].result = c->p->nodes[j]->out;
}

static bool rule_pool_keep(struct fuse_ctx *c, int i);
static bool rule_off(const struct fuse_ctx *c, const char *name);

/* Unpadded windows with stride = size: each activation is in at most one. */
static bool tiling_pool(const struct ir_node *n)
{
    return n->a.stride[0] == n->a.kernel[0] && n->a.stride[1] == n->a.kernel[1] && !n->a.pad[0] &&
           !n->a.pad[1] && !n->a.pad[2] && !n->a.pad[3] && n->a.dilation[0] <= 1 &&
           n->a.dilation[1] <= 1 && !n->a.ceil_mode; /* ONNX's options: not whole windows */
}

/* conv_pool: a convolution group whose activations y are read only by a
 * tiling max pooling (and, in training, by that pooling's argmax, its
 * gradient, which then reads the argmax, not y, and the activation's
 * gradient, which dact will fuse into it and evaluate from the pooled
 * output) pools each tile of its output while it is in cache: y is never
 * stored. */
static void try_conv_pool(struct fuse_ctx *c, int i)
{
    if (rule_off(c, "conv_pool"))
        return;
    const struct ir_program *p = c->p;
    struct ir_group *h = &c->f[i];
    const nncc_tensor *v = h->result;
    if (p->nodes[i]->op != IR_CONV2D || h->kind != IR_GROUP_BIAS_ACT || !v ||
        p->nodes[i]->a.groups > 1) /* grouped convolutions have kernels of their own */
        return;
    int mp = -1, am = -1, pg = -1, ag = -1, reads = 0;
    for (int q = i + 1; q < p->n_nodes; q++) {
        const struct ir_node *r = p->nodes[q];
        for (int s = 0; s < r->n_in; s++) {
            if (r->in[s] != v)
                continue;
            reads++;
            if (r->op == IR_MAXPOOL2D && s == 0 && mp < 0 && tiling_pool(r))
                mp = q;
            else if (r->op == IR_POOL_ARGMAX && s == 0 && am < 0)
                am = q;
            else if (r->op == IR_POOL2D_GRAD && s == 1 && pg < 0)
                pg = q;
            else if (r->op == IR_ACTIVATION_GRAD && s == 2 && ag < 0 && deriv_from_output(r->a.act))
                ag = q;
            else
                return;
        }
    }
    if (mp < 0 || reads != c->uses[v->id] || c->f[mp].kind == IR_GROUP_MEMBER)
        return;
    bool training = am >= 0 || pg >= 0 || ag >= 0;
    if (training && (rule_off(c, "pool_keep") || rule_off(c, "dact")))
        return;
    if (training) {
        /* The gradient must read the kept argmax, and the activation's
         * gradient must be the pooling gradient's only reader (dact). */
        if (am < 0 || pg < 0 || ag < 0 || p->nodes[pg]->in[3] != p->nodes[am]->out ||
            p->nodes[ag]->in[0] != p->nodes[pg]->out || c->uses[p->nodes[pg]->out->id] != 1)
            return;
        if (!rule_pool_keep(c, mp) || c->f[mp].pool_keep.argmax != p->nodes[am]->out)
            return;
    }
    /* The pooling (and the argmax it kept) join the convolution's group. */
    struct ir_epilogue epi = h->epi;
    const nncc_tensor *argmax = c->f[mp].kind == IR_GROUP_POOL_KEEP ? c->f[mp].pool_keep.argmax : NULL;
    h->kind = IR_GROUP_CONV_POOL;
    h->conv_pool.epi = epi;
    h->conv_pool.pool = p->nodes[mp];
    h->conv_pool.argmax = argmax;
    h->result = p->nodes[mp]->out;
    for (int q = mp + 1; q < p->n_nodes; q++)
        if (c->f[q].kind == IR_GROUP_MEMBER && c->f[q].head == mp)
            c->f[q].head = i;
    c->f[mp] = (struct ir_group){.kind = IR_GROUP_MEMBER, .head = i};
}

static bool rule_bias_act(struct fuse_ctx *c, int i)
{
    const struct ir_program *p = c->p;
    const struct ir_node *head = p->nodes[i];
    if (head->op != IR_MATMUL && head->op != IR_CONV2D)
        return false;
    int j = sole_reader(c, i, IR_BIAS_ADD);
    if (j < 0)
        return false;
    struct ir_group *h = &c->f[i];
    h->kind = IR_GROUP_BIAS_ACT;
    h->epi.bias = p->nodes[j]->in[1];
    absorb(c, i, j);
    /* The activation: z's readers other than it may only be its gradients,
     * which must then be computable from y. */
    const nncc_tensor *z = p->nodes[j]->out;
    int k = -1, grads = 0, others = 0;
    for (int q = j + 1; q < p->n_nodes; q++) {
        const struct ir_node *r = p->nodes[q];
        for (int s = 0; s < r->n_in; s++) {
            if (r->in[s] != z)
                continue;
            /* softmax: only along the last axis, the rows the epilogue does */
            if (k < 0 && s == 0 &&
                (r->op == IR_ACTIVATION || (r->op == IR_SOFTMAX && r->a.axis == 0)))
                k = q;
            else if (k >= 0 && r->op == IR_ACTIVATION_GRAD && s == 1 && r->in[2] == p->nodes[k]->out)
                grads++;
            else
                others++;
        }
    }
    int outputs = c->uses[z->id] - (k >= 0) - grads - others;
    if (k < 0 || others > 0 || outputs > 0 || c->f[k].kind == IR_GROUP_MEMBER)
        return true;
    const struct ir_node *act = p->nodes[k];
    if (act->op == IR_SOFTMAX) {
        if (grads > 0)
            return true;
        h->epi.softmax = true;
    } else {
        if (grads > 0 && !deriv_from_output(act->a.act))
            return true;
        h->epi.has_act = true;
        h->epi.act = act->a.act;
        for (int q = k + 1; q < p->n_nodes; q++)
            if (p->nodes[q]->op == IR_ACTIVATION_GRAD && p->nodes[q]->in[1] == z)
                c->f[q].grad_from_y = true;
    }
    absorb(c, i, k);
    try_conv_pool(c, i);
    return true;
}

/* pool_wgrad: the pooling gradient head i has made (value v, maybe with
 * dact applied) is read only by its convolution's filter gradient and
 * bias gradient, so the head computes those per image from a tile of v
 * that never leaves the cache.  Only for small filters (the first layer of
 * a network: few input channels), where the unfused filter gradient's GEMM
 * has a tiny k, and when an image's gradient fits the stack budget. */
static void try_pool_wgrad(struct fuse_ctx *c, int i)
{
    if (rule_off(c, "pool_wgrad"))
        return;
    const struct ir_program *p = c->p;
    struct ir_group *h = &c->f[i];
    const nncc_tensor *v = h->result ? h->result : p->nodes[i]->out;
    if (c->uses[v->id] > 2)
        return;
    int wg = -1, bg = -1;
    for (int q = i + 1; q < p->n_nodes; q++) {
        const struct ir_node *r = p->nodes[q];
        for (int s = 0; s < r->n_in; s++) {
            if (r->in[s] != v)
                continue;
            if (r->op == IR_CONV2D_GRAD_FILTER && s == 1 && wg < 0)
                wg = q;
            else if (r->op == IR_BIAS_GRAD && bg < 0)
                bg = q;
            else
                return;
        }
    }
    if (wg < 0 || c->f[wg].kind == IR_GROUP_MEMBER ||
        (bg >= 0 && c->f[bg].kind == IR_GROUP_MEMBER) ||
        c->uses[v->id] != 1 + (bg >= 0))
        return;
    const struct ir_node *w = p->nodes[wg];
    if (w->a.groups > 1) /* grouped filter gradients have a kernel of their own */
        return;
    int64_t filter = ir_shape_numel(w->out->shape, 0);  /* KH·KW·C·F */
    int64_t image = ir_shape_numel(v->shape, 1);         /* OH·OW·F */
    int64_t cols = image / v->shape.dim[3] * (filter / v->shape.dim[3]);
    if (filter > 4096 || image + cols > 65536)
        return;
    struct ir_epilogue epi = *ir_group_epilogue(h); /* a dact applied first */
    h->kind = IR_GROUP_POOL_WGRAD;
    h->pool_wgrad.epi = epi;
    h->pool_wgrad.wgrad = w;
    c->f[wg] = (struct ir_group){.kind = IR_GROUP_MEMBER, .head = i};
    h->result = w->out;
    if (bg >= 0) {
        c->f[bg] = (struct ir_group){.kind = IR_GROUP_MEMBER, .head = i};
        h->pool_wgrad.bias_grad = p->nodes[bg]->out;
    }
}

static bool rule_dact(struct fuse_ctx *c, int i)
{
    const struct ir_program *p = c->p;
    const struct ir_node *head = p->nodes[i];
    if (head->op != IR_MATMUL_NT && head->op != IR_CONV2D_GRAD_INPUT && head->op != IR_POOL2D_GRAD)
        return false;
    int j = sole_reader(c, i, IR_ACTIVATION_GRAD);
    if (j < 0 || !deriv_from_output(p->nodes[j]->a.act))
        return false;
    struct ir_group *h = &c->f[i];
    h->kind = IR_GROUP_DACT;
    h->epi.has_dact = true;
    h->epi.dact = p->nodes[j]->a.act;
    h->epi.dact_y = p->nodes[j]->in[2];
    absorb(c, i, j);
    if (head->op == IR_POOL2D_GRAD)
        try_pool_wgrad(c, i);
    return true;
}

/* pool_keep: the max pooling's kernel also writes its pool_argmax's value
 * (the same windows of the same x), so x is read once. */
static bool rule_pool_keep(struct fuse_ctx *c, int i)
{
    const struct ir_program *p = c->p;
    const struct ir_node *head = p->nodes[i];
    if (head->op != IR_MAXPOOL2D)
        return false;
    for (int k = i + 1; k < p->n_nodes; k++) {
        const struct ir_node *r = p->nodes[k];
        if (r->op != IR_POOL_ARGMAX || r->in[0] != head->in[0] || c->f[k].kind == IR_GROUP_MEMBER ||
            memcmp(r->a.kernel, head->a.kernel, sizeof r->a.kernel) != 0 ||
            memcmp(r->a.stride, head->a.stride, sizeof r->a.stride) != 0 ||
            memcmp(r->a.pad, head->a.pad, sizeof r->a.pad) != 0 ||
            memcmp(r->a.dilation, head->a.dilation, sizeof r->a.dilation) != 0 ||
            r->a.ceil_mode != head->a.ceil_mode)
            continue;
        struct ir_group *h = &c->f[i];
        h->kind = IR_GROUP_POOL_KEEP;
        c->f[k] = (struct ir_group){.kind = IR_GROUP_MEMBER, .head = i};
        h->result = head->out;
        h->pool_keep.argmax = r->out;
        return true;
    }
    return false;
}

static bool rule_pool_wgrad(struct fuse_ctx *c, int i)
{
    if (c->p->nodes[i]->op != IR_POOL2D_GRAD)
        return false;
    try_pool_wgrad(c, i);
    return c->f[i].kind != IR_GROUP_NONE;
}

/* chain: an element-wise head (Add of equal shapes, bias_add, inference
 * batch normalization, an activation or an activation gradient) and up to
 * four activations or activation gradients, each the only reader of the
 * value before (an activation's input may also be read by its own
 * gradients, which then take f' from y, as in bias_act), computed in one
 * loop that keeps each element in a register.  Inputs the followers read
 * besides the chain must exist when the head runs. */
static bool elementwise_head(const struct ir_node *n)
{
    switch (n->op) {
    case IR_ADD:
        for (int k = 0; k < n->n_in; k++)
            if (!ir_shape_eq(n->in[k]->shape, n->out->shape) || n->in[k]->batched != n->out->batched)
                return false;
        return true;
    case IR_BIAS_ADD:
    case IR_BATCHNORM:
    case IR_ACTIVATION:
    case IR_ACTIVATION_GRAD:
        return true;
    default:
        return false;
    }
}

/* The program index of the node producing t (inputs and parameters
 * included). */
static int producer_index(const struct fuse_ctx *c, const nncc_tensor *t)
{
    for (int q = 0; q < c->p->n_nodes; q++)
        if (c->p->nodes[q]->out == t)
            return q;
    return -1;
}

static bool rule_chain(struct fuse_ctx *c, int i)
{
    const struct ir_program *p = c->p;
    const struct ir_node *head = p->nodes[i];
    if (c->f[i].kind == IR_GROUP_MEMBER || !elementwise_head(head))
        return false;
    struct ir_group *h = &c->f[i];
    const nncc_tensor *v = head->out;
    while (h->chain.n < IR_CHAIN_MAX) {
        /* v's readers: one follower, plus that activation's own gradients. */
        int k = -1, grads = 0, others = 0;
        for (int q = i + 1; q < p->n_nodes; q++) {
            const struct ir_node *r = p->nodes[q];
            for (int s = 0; s < r->n_in; s++) {
                if (r->in[s] != v)
                    continue;
                if (k < 0 && s == 0 && c->f[q].kind != IR_GROUP_MEMBER &&
                    ir_shape_eq(r->out->shape, v->shape) &&
                    (r->op == IR_ACTIVATION ||
                     (r->op == IR_ACTIVATION_GRAD && r->in[1] != v && r->in[2] != v)))
                    k = q;
                else if (k >= 0 && p->nodes[k]->op == IR_ACTIVATION && r->op == IR_ACTIVATION_GRAD &&
                         s == 1 && r->in[2] == p->nodes[k]->out)
                    grads++;
                else
                    others++;
            }
        }
        if (k < 0 || others > 0 || c->uses[v->id] != 1 + grads)
            break;
        const struct ir_node *r = p->nodes[k];
        if (grads > 0 && !deriv_from_output(r->a.act))
            break;
        bool ready = true; /* the follower's other inputs exist when the head runs */
        for (int s = 1; s < r->n_in; s++)
            ready &= producer_index(c, r->in[s]) < i;
        if (!ready)
            break;
        if (grads > 0)
            for (int q = k + 1; q < p->n_nodes; q++)
                if (p->nodes[q]->op == IR_ACTIVATION_GRAD && p->nodes[q]->in[1] == v)
                    c->f[q].grad_from_y = true;
        h->chain.node[h->chain.n++] = r;
        absorb(c, i, k);
        v = r->out;
    }
    if (h->chain.n == 0)
        return false;
    h->kind = IR_GROUP_CHAIN;
    return true;
}

/* Whether NNCC_NO_FUSE turns rule `name` off: "1" turns all off, a
 * comma-separated list of names those rules. */
static bool rule_off(const struct fuse_ctx *c, const char *name)
{
    if (!c->off || !*c->off || strcmp(c->off, "0") == 0)
        return false;
    if (strcmp(c->off, "1") == 0)
        return true;
    size_t len = strlen(name);
    for (const char *s = c->off; (s = strstr(s, name)) != NULL; s += len)
        if ((s == c->off || s[-1] == ',') && (s[len] == '\0' || s[len] == ','))
            return true;
    return false;
}

/* The rules in the order tried; conv_pool extends bias_act (and
 * pool_wgrad may extend dact) from inside those rules. */
static const struct {
    enum ir_group_kind kind;
    bool (*apply)(struct fuse_ctx *c, int i);
} rules[] = {
    {IR_GROUP_BIAS_ACT, rule_bias_act},
    {IR_GROUP_DACT, rule_dact},
    {IR_GROUP_POOL_WGRAD, rule_pool_wgrad},
    {IR_GROUP_POOL_KEEP, rule_pool_keep},
    {IR_GROUP_CHAIN, rule_chain},
};

enum nncc_status pass_fuse(struct ir_plan *plan)
{
    const struct ir_program *p = &plan->program;
    struct fuse_ctx c = {.p = p};
    int ids = p->g->n_nodes + 1;
    c.f = calloc((size_t)p->n_nodes + 1, sizeof *c.f);
    c.uses = calloc((size_t)ids, sizeof *c.uses);
    c.reader = calloc((size_t)ids, sizeof *c.reader);
    if (!c.f || !c.uses || !c.reader) {
        free(c.f);
        free(c.uses);
        free(c.reader);
        return nncc_fail(NNCC_ERR_NOMEM, "out of memory (fusion)");
    }
    for (int i = 0; i < p->n_nodes; i++)
        for (int q = 0; q < p->nodes[i]->n_in; q++) {
            c.uses[p->nodes[i]->in[q]->id]++;
            c.reader[p->nodes[i]->in[q]->id] = i;
        }
    for (int k = 0; k < p->n_outputs; k++)
        c.uses[p->outputs[k]->id]++;
    c.off = getenv("NNCC_NO_FUSE"); /* for measuring what fusion buys */
    for (int i = 0; i < p->n_nodes; i++)
        for (size_t r = 0; r < sizeof rules / sizeof rules[0] && c.f[i].kind != IR_GROUP_MEMBER; r++)
            if (!rule_off(&c, ir_group_kind_name(rules[r].kind)) && rules[r].apply(&c, i))
                break;
    free(c.uses);
    free(c.reader);
    free(plan->groups);
    plan->groups = c.f;
    return NNCC_OK;
}
