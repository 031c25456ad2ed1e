/*
 * tile.c — tiling: the schedule of every GEMM-family node (dense layers,
 * convolutions and their gradients, batch_matmul).
 *
 * Requires a plan with a verified program.  Produces its tiles, one
 * struct ir_tile per node (ir/plan.h; zeros
 * for nodes it does not schedule), and changes nothing in the graph; the
 * emitters (codegen/gemm.c, codegen/conv.c) read it.  A schedule says
 *   - the parallel axis: output rows (dense, conv forward, input-gradient
 *     rows of dense), images (conv input gradient, whose col2im adds of one
 *     image must not race), eight fixed runs of rows summed apart and then
 *     in order (conv filter gradient: each thread builds the columns of
 *     its own rows only), or rows of the weight gradient (dense, and a
 *     pointwise or very large filter: no two threads write one element);
 *   - tile_rows: rows of the per-thread im2col tile (column tiles live on
 *     the thread's stack: tile_rows · K ≤ TILE_FLOATS, a multiple of the
 *     micro-kernel's 6 rows), or of the pixel blocks the filter gradient
 *     sums over;
 *   - min_work: multiply-adds below which the kernel stays on one thread
 *     (a fork/join costs a few microseconds);
 *   - pointwise: a 1x1 stride-1 unpadded convolution, which needs no
 *     columns at all;
 *   - direct: a forward convolution with at most DIRECT_K taps and no
 *     dilation across, whose receptive fields are multiplied where they lie
 *     in x (no columns, no packing: k is too small for a GEMM to pay).
 * Register blocking (6 rows × 2 vectors), the vector width (AVX-512, AVX2,
 * SSE/generic, chosen by the target when the unit is compiled) and the
 * cache blocking (KC, MC, NC) belong to the GEMM core, codegen/prelude/
 * gemm.c.  No schedule changes a result beyond floating-point
 * reassociation: rows and images are independent, and each dot product
 * runs in the same k order whatever the tile.  NNCC_TILE_ROWS=N overrides
 * tile_rows (rounded to a multiple of 6, at most what fits), for tests and
 * experiments.
 */
#include <stdlib.h>
#include <string.h>
#include "passes/passes.h"

#define TILE_FLOATS 65536 /* 256 KiB of columns per thread */
#define MR 6              /* the GEMM core's micro-kernel rows */
#define MIN_WORK 200000   /* multiply-adds */
#define DIRECT_K 32       /* taps: a 3x3 convolution of up to 3 channels */
#define RUN_PARTIALS (4L << 20) /* floats of the eight partial filter gradients, at most */

static int64_t rows_for(int64_t K, int64_t most, int64_t forced)
{
    int64_t fit = TILE_FLOATS / (K > 0 ? K : 1); /* the tile lives on the stack */
    int64_t r = forced > 0 && forced < fit ? forced : fit;
    if (r > most && forced <= 0)
        r = most;
    r = r / MR * MR;
    return r < MR ? MR : r;
}

static void conv_schedule(const struct ir_node *n, const nncc_tensor *w, struct ir_tile *t,
                          int64_t forced)
{
    const int64_t *wd = w->shape.dim;
    int64_t K = wd[0] * wd[1] * wd[2];
    t->pointwise = wd[0] == 1 && wd[1] == 1 && n->a.stride[0] == 1 && n->a.stride[1] == 1 &&
                   n->a.pad[0] == 0 && n->a.pad[2] == 0 && n->a.pad[1] == 0 &&
                   n->a.pad[3] == 0; /* ONNX's end pads change the output size */
    t->min_work = MIN_WORK;
    switch (n->op) {
    case IR_CONV2D:
        t->parallel = IR_PAR_ROWS;
        t->tile_rows = rows_for(K, 384, forced);
        t->direct = !t->pointwise && K <= DIRECT_K && n->a.dilation[1] == 1;
        break;
    case IR_CONV2D_GRAD_INPUT:
    case IR_CONV2D_TRANSPOSE: {
        int64_t pix = n->in[0]->shape.dim[1] * n->in[0]->shape.dim[2];
        t->parallel = IR_PAR_IMAGES;
        t->tile_rows = rows_for(K, pix, forced);
        break;
    }
    default: /* IR_CONV2D_GRAD_FILTER */
        t->parallel = !t->pointwise && 8 * ((K * wd[3] + 15) / 16 * 16) <= RUN_PARTIALS
                          ? IR_PAR_RUNS
                          : IR_PAR_OUT_ROWS;
        t->tile_rows = rows_for(K, 512, forced);
        break;
    }
    if (n->a.groups > 1) /* codegen/conv_group.c: columns per group, its own threads */
        t->pointwise = t->direct = false;
}

enum nncc_status pass_tile(struct ir_plan *plan)
{
    const struct ir_program *p = &plan->program;
    struct ir_tile *t = calloc((size_t)p->n_nodes + 1, sizeof *t);
    if (!t)
        return nncc_fail(NNCC_ERR_NOMEM, "out of memory (tiling)");
    const char *env = getenv("NNCC_TILE_ROWS");
    int64_t forced = env && *env ? strtoll(env, NULL, 10) : 0;
    for (int i = 0; i < p->n_nodes; i++) {
        const struct ir_node *n = p->nodes[i];
        switch (n->op) {
        case IR_MATMUL:
        case IR_MATMUL_NT:
            t[i].parallel = IR_PAR_ROWS;
            t[i].min_work = MIN_WORK;
            break;
        case IR_MATMUL_TN:
            t[i].parallel = IR_PAR_OUT_ROWS;
            t[i].min_work = MIN_WORK;
            break;
        case IR_BATCH_MATMUL: /* family h4-matmul: output rows (of each matrix) */
            t[i].parallel = IR_PAR_ROWS;
            t[i].min_work = MIN_WORK;
            break;
        case IR_BATCH_MATMUL_SUM: /* output rows: no two threads write one element */
            t[i].parallel = IR_PAR_OUT_ROWS;
            t[i].min_work = MIN_WORK;
            break;
        case IR_CONV2D:
            conv_schedule(n, n->in[1], &t[i], forced);
            break;
        case IR_CONV2D_GRAD_INPUT:
        case IR_CONV2D_TRANSPOSE:
            conv_schedule(n, n->in[1], &t[i], forced);
            break;
        case IR_CONV2D_GRAD_FILTER:
            conv_schedule(n, n->out, &t[i], forced);
            break;
        default:
            break;
        }
    }
    free(plan->tiles);
    plan->tiles = t;
    return NNCC_OK;
}
