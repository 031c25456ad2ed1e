/*
 * interp_matmul.c — reference kernels of the matrix products with ONNX
 * MatMul / Gemm semantics (family h4-matmul), in double:
 *   batch_matmul      c (…, M, P) = op(a) (…, M, K) · op(b) (…, K, P)
 *   batch_matmul_sum  the same products summed to a.like (no batch)
 * op swaps an operand's last two axes where a.trans_a (a.trans_b) is set;
 * the leading axes align from the right and broadcast as numpy's.  The
 * shape rules (ir/ops.c) have already checked every shape; here a batched
 * operand's first dimension is `batch`.  Written as plainly as possible,
 * with no stride tricks shared with the emitter (codegen/matmul.c), so
 * that it checks it: one loop over the product's leading index, each
 * operand's and the output's offset rebuilt from that index.
 */
#include <string.h>
#include "runtime/oracle/interp.h"

/* A value's shape with the batch filled in. */
static struct nncc_shape real_shape(const nncc_tensor *t, int batch)
{
    struct nncc_shape s = t->shape;
    if (t->batched)
        s.dim[0] = batch;
    return s;
}

/* Offset of the matrix of a value shaped s at the product's leading index
 * idx (L axes): s's leading axes align from the right, and an axis of size
 * 1 reads (or, for the output, sums into) index 0. */
static int64_t matrix_offset(struct nncc_shape s, const int64_t *idx, int L)
{
    int lead = s.rank - 2;
    int64_t off = 0;
    for (int j = 0; j < lead; j++) {
        int64_t c = s.dim[j] == 1 ? 0 : idx[j + L - lead];
        off = off * s.dim[j] + c;
    }
    return off * s.dim[s.rank - 2] * s.dim[s.rank - 1];
}

/* out (shaped o) = Σ of op(a)·op(b) over the product's leading indices
 * that meet at each of out's matrices. */
static void products(const struct ir_node *n, int batch, const double *const *in, double *out,
                     struct nncc_shape o)
{
    struct nncc_shape a = real_shape(n->in[0], batch), b = real_shape(n->in[1], batch);
    bool ta = n->a.trans_a, tb = n->a.trans_b;
    int ro = a.rank > b.rank ? a.rank : b.rank, L = ro - 2;
    int64_t M = a.dim[a.rank - (ta ? 1 : 2)], K = a.dim[a.rank - (ta ? 2 : 1)];
    int64_t P = b.dim[b.rank - (tb ? 2 : 1)];
    int64_t lead[NNCC_MAX_RANK], items = 1;
    for (int i = 0; i < L; i++) {
        int ia = i - (ro - a.rank), ib = i - (ro - b.rank);
        int64_t da = ia >= 0 ? a.dim[ia] : 1, db = ib >= 0 ? b.dim[ib] : 1;
        lead[i] = da == 1 ? db : da; /* numpy's rule (an empty batch stays empty) */
        items *= lead[i];
    }
    memset(out, 0, sizeof *out * (size_t)ir_shape_numel(o, 0));
    for (int64_t t = 0; t < items; t++) {
        int64_t idx[NNCC_MAX_RANK], rem = t;
        for (int i = L - 1; i >= 0; i--) {
            idx[i] = rem % lead[i];
            rem /= lead[i];
        }
        const double *A = in[0] + matrix_offset(a, idx, L), *B = in[1] + matrix_offset(b, idx, L);
        double *C = out + matrix_offset(o, idx, L);
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < P; j++) {
                double acc = 0;
                for (int64_t k = 0; k < K; k++)
                    acc += (ta ? A[k * M + i] : A[i * K + k]) * (tb ? B[j * K + k] : B[k * P + j]);
                C[i * P + j] += acc;
            }
    }
}

void ref_batch_matmul(const struct ir_node *n, int batch, const double *const *in, double *out,
                      const double *h)
{
    (void)h;
    products(n, batch, in, out, real_shape(n->out, batch));
}

void ref_batch_matmul_sum(const struct ir_node *n, int batch, const double *const *in,
                          double *out, const double *h)
{
    (void)h;
    products(n, batch, in, out, n->out->shape); /* a.like, no batch */
}
