/*
 * tensor.c — emitters of the tensor ops (transpose, strided slice, pad,
 * reduce, gather) and their gradients; ONNX semantics, any rank, the
 * conventions written above the shape rules in ir/ops.c.
 *
 * Every kernel works one sample at a time when its value is batched (the
 * batch axis is never moved, sliced, padded or reduced: the shape rules
 * refuse it), so the per-sample problem has constant dims only, and the
 * samples run on several threads.  Axes of size 1 are dropped and
 * neighbouring axes that move together are merged first, so the loop nests
 * are as shallow as the problem allows: an NCHW→NHWC transpose becomes a
 * 2-D transpose per image, done in 32×32 tiles (reads of one tile stay in
 * cache while its writes are contiguous), and a slice with unit steps on
 * its inner axis copies rows with memcpy.  Gather indices outside
 * [−size, size) (or NaN) give zeros, never a read out of bounds.  Results
 * are the same on any thread count: threads split samples or rows, never
 * a sum.
 */
#include <math.h>
#include "codegen/codegen.h"

#define TILE 32

/* A loop nest over `k` axes, each with a size and the steps of two linear
 * offsets ("a" and "b", e.g. into the input and the output). */
struct nest {
    int k;
    long long dim[NNCC_MAX_RANK], sa[NNCC_MAX_RANK], sb[NNCC_MAX_RANK];
};

/* Opens the loops over the first `depth` axes of L; inside, the offsets
 * are `a<depth>` and `b<depth>` (a0 = a_base, b0 = b_base). */
static void nest_open(struct cw *w, const struct nest *L, int depth, const char *a_base,
                      const char *b_base)
{
    cw_line(w, "{");
    w->indent++;
    cw_line(w, "const long a0 = %s, b0 = %s;", a_base, b_base);
    for (int d = 0; d < depth; d++) {
        cw_line(w, "for (long i%d = 0; i%d < %lldL; i%d++) {", d, d, L->dim[d], d);
        w->indent++;
        cw_line(w, "const long a%d = a%d + i%d * %lldL, b%d = b%d + i%d * %lldL;", d + 1, d, d,
                L->sa[d], d + 1, d, d, L->sb[d]);
    }
    cw_line(w, "(void)a%d, (void)b%d;", depth, depth);
}

static void nest_close(struct cw *w, int depth)
{
    for (int d = 0; d <= depth; d++) {
        w->indent--;
        cw_line(w, "}");
    }
}

/* Row-major strides of dims[0 … k). */
static void row_strides(const long long *dims, int k, long long *st)
{
    long long acc = 1;
    for (int i = k - 1; i >= 0; i--) {
        st[i] = acc;
        acc *= dims[i];
    }
}

/* A value's per-sample dims when batched (the batch axis dropped), else
 * all of them; returns how many. */
static int sample_dims(const nncc_tensor *t, long long *d)
{
    int from = t->batched ? 1 : 0, k = 0;
    for (int i = from; i < t->shape.rank; i++)
        d[k++] = t->shape.dim[i];
    return k;
}

/* A float constant as C source (inf and NaN spelled with math.h's names). */
static const char *float_lit(float v, char *buf, size_t size)
{
    if (isnan(v))
        snprintf(buf, size, "NAN");
    else if (isinf(v))
        snprintf(buf, size, "%sINFINITY", v < 0 ? "-" : "");
    else
        snprintf(buf, size, "%af", (double)v);
    return buf;
}

/* A value's shape for kernel comments: "(n, 3, 4)" when batched, its own
 * dims when not. */
static const char *vshape(const nncc_tensor *t, char *buf, size_t size)
{
    return t->batched ? cg_shape(t->shape, buf, size) : ir_dims_str(t->shape, buf, size);
}

/* The per-sample loop every kernel here starts with: b over the samples
 * (on several threads when the work is large), or once for unbatched
 * values.  `work`: floats moved per sample (OpenMP's threshold). */
static void sample_loop_open(struct cw *w, bool batched, long long work)
{
    if (batched) {
        char wk[64];
        snprintf(wk, sizeof wk, "(long)n * %lldL", work);
        cg_parallel(w, wk);
        cw_line(w, "for (long b = 0; b < (long)n; b++) {");
    } else {
        cw_line(w, "(void)n;");
        cw_line(w, "{");
        cw_line(w, "    const long b = 0;");
    }
    w->indent++;
}

static void sample_loop_close(struct cw *w)
{
    w->indent--;
    cw_line(w, "}");
}

static void kernel_call(struct cg *cg, const struct ir_node *n)
{
    cw_raw(&cg->body, "    %sk%d(n", cg->prefix, cg_id(cg, n));
    for (int k = 0; k < n->n_in; k++)
        cw_raw(&cg->body, ", %s", cg_buf(cg, n->in[k]));
    cw_raw(&cg->body, ", %s);\n", cg_buf(cg, n->out));
}

/* ---- Transpose ---------------------------------------------------------- */

/* The per-sample transpose simplified: dims of size 1 dropped and output
 * axes that are neighbours in the input too merged.  e: input dims, p:
 * output axis i is input axis p[i]; returns the new k. */
static int simplify_perm(long long *e, int *p, int k)
{
    /* Drop size-1 axes. */
    int map[NNCC_MAX_RANK], k1 = 0;
    long long e1[NNCC_MAX_RANK];
    for (int i = 0; i < k; i++) {
        map[i] = e[i] == 1 ? -1 : k1;
        if (e[i] != 1)
            e1[k1++] = e[i];
    }
    int p1[NNCC_MAX_RANK], m = 0;
    for (int i = 0; i < k; i++)
        if (map[p[i]] >= 0)
            p1[m++] = map[p[i]];
    /* Merge runs p1[i+1] == p1[i] + 1: each run is one input range. */
    int start[NNCC_MAX_RANK], len[NNCC_MAX_RANK], g = 0;
    for (int i = 0; i < m; i++) {
        if (g && p1[i] == start[g - 1] + len[g - 1]) {
            len[g - 1]++;
        } else {
            start[g] = p1[i];
            len[g++] = 1;
        }
    }
    /* The runs renumbered in input order. */
    for (int i = 0; i < g; i++) {
        int rank = 0;
        for (int j = 0; j < g; j++)
            rank += start[j] < start[i];
        long long d = 1;
        for (int t = 0; t < len[i]; t++)
            d *= e1[start[i] + t];
        e[rank] = d;
        p[i] = rank;
    }
    return g;
}

void emit_transpose(struct cg *cg, const struct ir_node *n)
{
    const nncc_tensor *x = n->in[0];
    long long e[NNCC_MAX_RANK];
    int p[NNCC_MAX_RANK], from = x->batched ? 1 : 0;
    int k = sample_dims(x, e);
    for (int i = 0; i < k; i++)
        p[i] = n->a.perm[i + from] - from;
    long long S = ir_shape_numel(x->shape, from);
    k = simplify_perm(e, p, k);
    long long ist[NNCC_MAX_RANK], ost[NNCC_MAX_RANK], od[NNCC_MAX_RANK];
    row_strides(e, k, ist);
    for (int i = 0; i < k; i++)
        od[i] = e[p[i]];
    row_strides(od, k, ost);

    struct cw *w = &cg->defs;
    char what[200], xs[100];
    snprintf(what, sizeof what, "transpose of %s", vshape(x, xs, sizeof xs));
    cg_kernel_comment(cg, n, what);
    cw_line(w, "static void %sk%d(int n, const float *restrict x, float *restrict y)", cg->prefix,
            cg_id(cg, n));
    cw_line(w, "{");
    w->indent++;
    if (k <= 1) { /* nothing moves */
        cw_line(w, "memcpy(y, x, sizeof(float) * %s%lldL);", x->batched ? "(size_t)n * " : "", S);
    } else {
        sample_loop_open(w, x->batched, S);
        cw_line(w, "const float *restrict xb = x + b * %lldL;", S);
        cw_line(w, "float *restrict yb = y + b * %lldL;", S);
        struct nest L = {0};
        if (p[k - 1] == k - 1) {
            /* The inner axis stays: copy rows of e[k-1] floats. */
            for (int i = 0; i < k - 1; i++) {
                L.dim[L.k] = od[i];
                L.sa[L.k] = ist[p[i]];
                L.sb[L.k++] = ost[i];
            }
            nest_open(w, &L, L.k, "0", "0");
            cw_line(w, "memcpy(yb + b%d, xb + a%d, sizeof(float) * %lldL);", L.k, L.k, e[k - 1]);
            nest_close(w, L.k);
        } else {
            /* A 2-D transpose of (input inner axis) × (output inner axis)
             * per index of the other axes, in tiles. */
            int A = p[k - 1], Q = 0;
            for (int i = 0; i < k; i++)
                if (p[i] == k - 1)
                    Q = i;
            for (int i = 0; i < k - 1; i++) {
                if (i == Q)
                    continue;
                L.dim[L.k] = od[i];
                L.sa[L.k] = ist[p[i]];
                L.sb[L.k++] = ost[i];
            }
            long long EA = e[A], EC = e[k - 1], IA = ist[A], OQ = ost[Q];
            nest_open(w, &L, L.k, "0", "0");
            cw_line(w, "for (long t0 = 0; t0 < %lldL; t0 += %d)", EC, TILE);
            cw_line(w, "    for (long u0 = 0; u0 < %lldL; u0 += %d) {", EA, TILE);
            cw_line(w, "        const long t1 = t0 + %d < %lldL ? t0 + %d : %lldL;", TILE, EC, TILE,
                    EC);
            cw_line(w, "        const long u1 = u0 + %d < %lldL ? u0 + %d : %lldL;", TILE, EA, TILE,
                    EA);
            cw_line(w, "        for (long t = t0; t < t1; t++)");
            cw_line(w, "            for (long u = u0; u < u1; u++)");
            cw_line(w, "                yb[b%d + t * %lldL + u] = xb[a%d + u * %lldL + t];", L.k, OQ,
                    L.k, IA);
            cw_line(w, "    }");
            nest_close(w, L.k);
        }
        sample_loop_close(w);
    }
    w->indent--;
    cw_line(w, "}");
    kernel_call(cg, n);
}

/* ---- Strided slice and its gradient ------------------------------------- */

/* The slice's per-sample loop nest: a into the input (x or dx), b into the
 * output (y or dy); the inner axis is left out of the nest when its step
 * is 1 (rows copied whole).  Sets *a0: the offset of the first element,
 * *inner and *inner_step: the inner axis (count, input step). */
static void slice_nest(const struct ir_node *n, const nncc_tensor *big, const nncc_tensor *small,
                       struct nest *L, long long *a0, long long *inner, long long *inner_step)
{
    long long xd[NNCC_MAX_RANK], yd[NNCC_MAX_RANK], xst[NNCC_MAX_RANK], yst[NNCC_MAX_RANK];
    int from = big->batched ? 1 : 0, k = sample_dims(big, xd);
    sample_dims(small, yd);
    row_strides(xd, k, xst);
    row_strides(yd, k, yst);
    *L = (struct nest){0};
    *a0 = 0;
    for (int i = 0; i < k; i++) {
        *a0 += n->a.begin[i + from] * xst[i];
        L->dim[L->k] = yd[i];
        /* An axis of one element never steps (its step may be huge). */
        L->sa[L->k] = yd[i] == 1 ? 0 : n->a.step[i + from] * xst[i];
        L->sb[L->k++] = yst[i];
    }
    /* The inner axis is handled by the caller. */
    L->k--;
    *inner = yd[k - 1];
    *inner_step = yd[k - 1] == 1 ? 1 : n->a.step[k - 1 + from];
}

/* A batched rank-1 value (N): the per-sample problem is one float, which
 * the slice and pad kernels (the batch axis untouched) copy. */
static bool emit_sample_copy(struct cg *cg, const struct ir_node *n, const nncc_tensor *x)
{
    if (!(x->batched && x->shape.rank == 1))
        return false;
    struct cw *w = &cg->defs;
    cg_kernel_comment(cg, n, "a copy (rank 1: only the batch axis)");
    cw_line(w, "static void %sk%d(int n, const float *restrict x, float *restrict y)", cg->prefix,
            cg_id(cg, n));
    cw_line(w, "{");
    cw_line(w, "    memcpy(y, x, sizeof(float) * (size_t)n);");
    cw_line(w, "}");
    kernel_call(cg, n);
    return true;
}

static void emit_slice_common(struct cg *cg, const struct ir_node *n, bool grad)
{
    const nncc_tensor *big = grad ? n->out : n->in[0], *small = grad ? n->in[0] : n->out;
    if (emit_sample_copy(cg, n, big))
        return;
    struct nest L;
    long long a0, inner, step;
    slice_nest(n, big, small, &L, &a0, &inner, &step);
    int from = big->batched ? 1 : 0;
    long long SX = ir_shape_numel(big->shape, from), SY = ir_shape_numel(small->shape, from);
    struct cw *w = &cg->defs;
    char what[200], xs[100], base[32];
    snprintf(what, sizeof what, "%s %s", grad ? "strided slice gradient into" : "strided slice of",
             vshape(big, xs, sizeof xs));
    cg_kernel_comment(cg, n, what);
    if (grad)
        cw_line(w, "static void %sk%d(int n, const float *restrict dy, float *restrict dx)",
                cg->prefix, cg_id(cg, n));
    else
        cw_line(w, "static void %sk%d(int n, const float *restrict x, float *restrict y)",
                cg->prefix, cg_id(cg, n));
    cw_line(w, "{");
    w->indent++;
    sample_loop_open(w, big->batched, SX);
    if (grad) {
        cw_line(w, "float *restrict xb = dx + b * %lldL;", SX);
        cw_line(w, "const float *restrict yb = dy + b * %lldL;", SY);
        cw_line(w, "memset(xb, 0, sizeof(float) * %lldL);", SX);
    } else {
        cw_line(w, "const float *restrict xb = x + b * %lldL;", SX);
        cw_line(w, "float *restrict yb = y + b * %lldL;", SY);
    }
    snprintf(base, sizeof base, "%lldL", a0);
    nest_open(w, &L, L.k, base, "0");
    if (step == 1) {
        if (grad)
            cw_line(w, "memcpy(xb + a%d, yb + b%d, sizeof(float) * %lldL);", L.k, L.k, inner);
        else
            cw_line(w, "memcpy(yb + b%d, xb + a%d, sizeof(float) * %lldL);", L.k, L.k, inner);
    } else {
        cw_line(w, "for (long j = 0; j < %lldL; j++)", inner);
        if (grad)
            cw_line(w, "    xb[a%d + j * %lldL] = yb[b%d + j];", L.k, step, L.k);
        else
            cw_line(w, "    yb[b%d + j] = xb[a%d + j * %lldL];", L.k, L.k, step);
    }
    nest_close(w, L.k);
    sample_loop_close(w);
    w->indent--;
    cw_line(w, "}");
    kernel_call(cg, n);
}

void emit_strided_slice(struct cg *cg, const struct ir_node *n) { emit_slice_common(cg, n, false); }

void emit_strided_slice_grad(struct cg *cg, const struct ir_node *n)
{
    emit_slice_common(cg, n, true);
}

/* ---- Pad ------------------------------------------------------------------ */

/* y filled with the constant, then x's rows copied into its interior. */
void emit_pad(struct cg *cg, const struct ir_node *n)
{
    const nncc_tensor *x = n->in[0];
    if (emit_sample_copy(cg, n, x))
        return;
    long long xd[NNCC_MAX_RANK], yd[NNCC_MAX_RANK], xst[NNCC_MAX_RANK], yst[NNCC_MAX_RANK];
    int from = x->batched ? 1 : 0, k = sample_dims(x, xd);
    sample_dims(n->out, yd);
    row_strides(xd, k, xst);
    row_strides(yd, k, yst);
    long long SX = ir_shape_numel(x->shape, from), SY = ir_shape_numel(n->out->shape, from);
    long long b0 = 0;
    struct nest L = {0};
    for (int i = 0; i < k; i++) {
        b0 += n->a.pad_begin[i + from] * yst[i];
        if (i < k - 1) {
            L.dim[L.k] = xd[i];
            L.sa[L.k] = xst[i];
            L.sb[L.k++] = yst[i];
        }
    }
    struct cw *w = &cg->defs;
    char what[200], xs[100], v[64], base[32];
    snprintf(what, sizeof what, "constant pad (%s) of %s",
             float_lit(n->a.pad_value, v, sizeof v), vshape(x, xs, sizeof xs));
    cg_kernel_comment(cg, n, what);
    cw_line(w, "static void %sk%d(int n, const float *restrict x, float *restrict y)", cg->prefix,
            cg_id(cg, n));
    cw_line(w, "{");
    w->indent++;
    sample_loop_open(w, x->batched, SY);
    cw_line(w, "const float *restrict xb = x + b * %lldL;", SX);
    cw_line(w, "float *restrict yb = y + b * %lldL;", SY);
    cw_line(w, "for (long i = 0; i < %lldL; i++)", SY);
    cw_line(w, "    yb[i] = %s;", v);
    snprintf(base, sizeof base, "%lldL", b0);
    nest_open(w, &L, L.k, "0", base);
    cw_line(w, "memcpy(yb + b%d, xb + a%d, sizeof(float) * %lldL);", L.k, L.k, xd[k - 1]);
    nest_close(w, L.k);
    sample_loop_close(w);
    w->indent--;
    cw_line(w, "}");
    kernel_call(cg, n);
}

/* ---- Reduce and its gradient --------------------------------------------- */

/* The per-sample reduction as a nest over the input in memory order: a
 * steps through x (contiguously), b through y (0 on reduced axes).  Axes of
 * size 1 are dropped and neighbours both reduced or both kept merged.
 * Returns whether the innermost axis is reduced; *count: cells per output. */
static bool reduce_nest(const struct ir_node *n, const nncc_tensor *x, struct nest *L,
                        long long *count)
{
    long long d[NNCC_MAX_RANK], md[NNCC_MAX_RANK];
    bool red[NNCC_MAX_RANK];
    int from = x->batched ? 1 : 0, k = sample_dims(x, d), m = 0;
    *count = 1;
    for (int i = 0; i < k; i++) {
        bool r = n->a.reduce_axes >> (i + from) & 1u;
        if (r)
            *count *= d[i];
        if (d[i] == 1)
            continue;
        if (m && red[m - 1] == r) {
            md[m - 1] *= d[i];
        } else {
            md[m] = d[i];
            red[m++] = r;
        }
    }
    if (m == 0) { /* every axis of size 1 */
        md[0] = 1;
        red[0] = true;
        m = 1;
    }
    long long xst[NNCC_MAX_RANK], acc = 1;
    row_strides(md, m, xst);
    *L = (struct nest){.k = m};
    for (int i = m - 1; i >= 0; i--) {
        L->dim[i] = md[i];
        L->sa[i] = xst[i];
        L->sb[i] = red[i] ? 0 : acc;
        if (!red[i])
            acc *= md[i];
    }
    return red[m - 1];
}

static const char *reduce_name(int r)
{
    static const char *const names[] = {"sum", "mean", "max", "min", "prod"};
    return r >= 0 && r <= IR_REDUCE_PROD ? names[r] : "?";
}

/* acc ⊕= v in C for the reduction. */
static void reduce_line(struct cw *w, int r, const char *acc, const char *v)
{
    if (r == IR_REDUCE_MAX)
        cw_line(w, "%s = %s > %s ? %s : %s;", acc, v, acc, v, acc);
    else if (r == IR_REDUCE_MIN)
        cw_line(w, "%s = %s < %s ? %s : %s;", acc, v, acc, v, acc);
    else if (r == IR_REDUCE_PROD)
        cw_line(w, "%s *= %s;", acc, v);
    else
        cw_line(w, "%s += %s;", acc, v);
}

void emit_reduce(struct cg *cg, const struct ir_node *n)
{
    const nncc_tensor *x = n->in[0];
    struct nest L;
    long long count;
    int r = n->a.reduce, from = x->batched ? 1 : 0;
    bool inner_red = reduce_nest(n, x, &L, &count);
    long long SX = ir_shape_numel(x->shape, from), SY = ir_shape_numel(n->out->shape, from);
    struct cw *w = &cg->defs;
    char what[200], xs[100];
    snprintf(what, sizeof what, "%s over axes 0x%x of %s", reduce_name(r),
             (unsigned)n->a.reduce_axes, vshape(x, xs, sizeof xs));
    cg_kernel_comment(cg, n, what);
    cw_line(w, "static void %sk%d(int n, const float *restrict x, float *restrict y)", cg->prefix,
            cg_id(cg, n));
    cw_line(w, "{");
    w->indent++;
    sample_loop_open(w, x->batched, SX);
    cw_line(w, "const float *restrict xb = x + b * %lldL;", SX);
    cw_line(w, "float *restrict yb = y + b * %lldL;", SY);
    const char *init = r == IR_REDUCE_MAX   ? "-INFINITY"
                       : r == IR_REDUCE_MIN ? "INFINITY"
                       : r == IR_REDUCE_PROD ? "1.0f"
                                             : "0.0f";
    cw_line(w, "for (long i = 0; i < %lldL; i++)", SY);
    cw_line(w, "    yb[i] = %s;", init);
    int outer = L.k - 1;
    nest_open(w, &L, outer, "0", "0");
    if (inner_red) {
        /* One output per row: a running value, in the row's order. */
        cw_line(w, "float acc = yb[b%d];", outer);
        cw_line(w, "for (long j = 0; j < %lldL; j++) {", L.dim[outer]);
        cw_line(w, "    const float v = xb[a%d + j];", outer);
        w->indent++;
        reduce_line(w, r, "acc", "v");
        w->indent--;
        cw_line(w, "}");
        cw_line(w, "yb[b%d] = acc;", outer);
    } else {
        cw_line(w, "for (long j = 0; j < %lldL; j++) {", L.dim[outer]);
        cw_line(w, "    const float v = xb[a%d + j];", outer);
        char acc[32];
        snprintf(acc, sizeof acc, "yb[b%d + j]", outer);
        w->indent++;
        reduce_line(w, r, acc, "v");
        w->indent--;
        cw_line(w, "}");
    }
    nest_close(w, outer);
    if (r == IR_REDUCE_MEAN) {
        cw_line(w, "for (long i = 0; i < %lldL; i++)", SY);
        cw_line(w, "    yb[i] /= %lld.0f;", count);
    }
    sample_loop_close(w);
    w->indent--;
    cw_line(w, "}");
    kernel_call(cg, n);
}

/* (dy, x, y) → dx.  Sum and mean: dy broadcast (÷ count); max and min: dy
 * split equally among the cells equal to y, counted first per sample into
 * scratch space (so the samples run in order on one thread). */
void emit_reduce_grad(struct cg *cg, const struct ir_node *n)
{
    const nncc_tensor *x = n->in[1];
    struct nest L;
    long long count;
    int r = n->a.reduce, from = x->batched ? 1 : 0;
    reduce_nest(n, x, &L, &count);
    long long SX = ir_shape_numel(x->shape, from), SY = ir_shape_numel(n->in[0]->shape, from);
    bool ties = r == IR_REDUCE_MAX || r == IR_REDUCE_MIN;
    NNCC_ASSERT(r != IR_REDUCE_PROD);
    struct cw *w = &cg->defs;
    char what[200], xs[100];
    snprintf(what, sizeof what, "gradient of %s over axes 0x%x of %s", reduce_name(r),
             (unsigned)n->a.reduce_axes, vshape(x, xs, sizeof xs));
    cg_kernel_comment(cg, n, what);
    cw_line(w, "static void %sk%d(int n, const float *restrict dy, const float *restrict x,",
            cg->prefix, cg_id(cg, n));
    cw_line(w, "               const float *restrict y, float *restrict dx%s)",
            ties ? ", float *restrict cnt" : "");
    cw_line(w, "{");
    w->indent++;
    if (ties && x->batched) { /* the counts in cnt are one sample's */
        cw_line(w, "for (long b = 0; b < (long)n; b++) {");
        w->indent++;
    } else if (ties) {
        cw_line(w, "(void)n;");
        cw_line(w, "{");
        cw_line(w, "    const long b = 0;");
        w->indent++;
    } else {
        sample_loop_open(w, x->batched, SX);
    }
    if (ties) { /* sum and mean read dy alone */
        cw_line(w, "const float *restrict xb = x + b * %lldL;", SX);
        cw_line(w, "const float *restrict yb = y + b * %lldL;", SY);
    } else {
        cw_line(w, "(void)x, (void)y;");
    }
    cw_line(w, "const float *restrict gb = dy + b * %lldL;", SY);
    cw_line(w, "float *restrict db = dx + b * %lldL;", SX);
    if (ties) {
        cw_line(w, "for (long i = 0; i < %lldL; i++)", SY);
        cw_line(w, "    cnt[i] = 0.0f;");
        nest_open(w, &L, L.k, "0", "0");
        cw_line(w, "cnt[b%d] += xb[a%d] == yb[b%d] ? 1.0f : 0.0f;", L.k, L.k, L.k);
        nest_close(w, L.k);
        nest_open(w, &L, L.k, "0", "0");
        cw_line(w, "db[a%d] = xb[a%d] == yb[b%d] ? gb[b%d] / cnt[b%d] : 0.0f;", L.k, L.k, L.k, L.k,
                L.k);
        nest_close(w, L.k);
    } else {
        nest_open(w, &L, L.k, "0", "0");
        if (r == IR_REDUCE_MEAN)
            cw_line(w, "db[a%d] = gb[b%d] / %lld.0f;", L.k, L.k, count);
        else
            cw_line(w, "db[a%d] = gb[b%d];", L.k, L.k);
        nest_close(w, L.k);
    }
    w->indent--;
    cw_line(w, "}");
    w->indent--;
    cw_line(w, "}");
    cw_raw(&cg->body, "    %sk%d(n, %s, %s, %s, %s", cg->prefix, cg_id(cg, n),
           cg_buf(cg, n->in[0]), cg_buf(cg, n->in[1]), cg_buf(cg, n->in[2]), cg_buf(cg, n->out));
    if (ties)
        cw_raw(&cg->body, ", %s", cg_scratch(cg, SY));
    cw_raw(&cg->body, ");\n");
}

/* ---- Gather and its gradients --------------------------------------------- */

/* data (outer, D, inner) and indices (K): each a C expression ("n * 6L"
 * when batched). */
static void gather_dims(const struct ir_node *n, const nncc_tensor *data,
                        const nncc_tensor *idx, char *outer, char *K, size_t size, long long *D,
                        long long *inner)
{
    int axis = n->a.axis;
    long long o = 1;
    for (int d = data->batched ? 1 : 0; d < axis; d++)
        o *= data->shape.dim[d];
    snprintf(outer, size, "%s%lldL", data->batched ? "(long)n * " : "", o);
    snprintf(K, size, "%s%lldL", idx->batched ? "(long)n * " : "", (long long)cg_numel(idx));
    *D = data->shape.dim[axis];
    *inner = ir_shape_numel(data->shape, axis + 1);
}

/* The valid index of v as j, else the statement `bad`. */
static void gather_index(struct cw *w, long long D, const char *bad)
{
    cw_line(w, "const float v = idx[k];");
    cw_line(w, "if (!(v >= -%lld.0f && v < %lld.0f)) { %s }", D, D, bad);
    cw_line(w, "long j = (long)v;");
    cw_line(w, "if (j < 0) j += %lldL;", D);
}

void emit_gather(struct cg *cg, const struct ir_node *n)
{
    char outer[64], K[64];
    long long D, inner;
    gather_dims(n, n->in[0], n->in[1], outer, K, sizeof outer, &D, &inner);
    struct cw *w = &cg->defs;
    char what[200], xs[100], is[100];
    snprintf(what, sizeof what, "gather on axis %d of %s by %s", n->a.axis,
             vshape(n->in[0], xs, sizeof xs), vshape(n->in[1], is, sizeof is));
    cg_kernel_comment(cg, n, what);
    cw_line(w, "static void %sk%d(int n, const float *restrict x, const float *restrict idx,",
            cg->prefix, cg_id(cg, n));
    cw_line(w, "               float *restrict y)");
    cw_line(w, "{");
    w->indent++;
    cw_line(w, "(void)n;");
    cw_line(w, "const long K = %s, rows = %s * K;", K, outer);
    char work[64];
    snprintf(work, sizeof work, "rows * %lldL", inner);
    cg_parallel(w, work);
    cw_line(w, "for (long r = 0; r < rows; r++) {");
    w->indent++;
    cw_line(w, "const long o = r / K, k = r %% K;");
    cw_line(w, "float *restrict yr = y + r * %lldL;", inner);
    char bad[128];
    snprintf(bad, sizeof bad, "memset(yr, 0, sizeof(float) * %lldL); continue;", inner);
    gather_index(w, D, bad);
    cw_line(w, "memcpy(yr, x + (o * %lldL + j) * %lldL, sizeof(float) * %lldL);", D, inner, inner);
    w->indent--;
    cw_line(w, "}");
    w->indent--;
    cw_line(w, "}");
    kernel_call(cg, n);
}

/* GATHER_GRAD and GATHER_GRAD_PARAM: zeros, then every row of dy added at
 * its index in k order (duplicates accumulate); rows of different outer
 * indices go to different threads. */
void emit_gather_grad(struct cg *cg, const struct ir_node *n)
{
    char outer[64], K[64];
    long long D, inner;
    gather_dims(n, n->out, n->in[1], outer, K, sizeof outer, &D, &inner);
    struct cw *w = &cg->defs;
    char what[200], xs[100];
    snprintf(what, sizeof what, "gather gradient on axis %d into %s", n->a.axis,
             vshape(n->out, xs, sizeof xs));
    cg_kernel_comment(cg, n, what);
    cw_line(w, "static void %sk%d(int n, const float *restrict dy, const float *restrict idx,",
            cg->prefix, cg_id(cg, n));
    cw_line(w, "               float *restrict dx)");
    cw_line(w, "{");
    w->indent++;
    cw_line(w, "(void)n;");
    cw_line(w, "const long K = %s, outer = %s;", K, outer);
    char work[64];
    snprintf(work, sizeof work, "outer * K * %lldL", inner);
    cg_parallel(w, work);
    cw_line(w, "for (long o = 0; o < outer; o++) {");
    w->indent++;
    cw_line(w, "float *restrict xo = dx + o * %lldL;", D * inner);
    cw_line(w, "memset(xo, 0, sizeof(float) * %lldL);", D * inner);
    cw_line(w, "for (long k = 0; k < K; k++) {");
    w->indent++;
    gather_index(w, D, "continue;");
    cw_line(w, "const float *restrict g = dy + (o * K + k) * %lldL;", inner);
    cw_line(w, "float *restrict xr = xo + j * %lldL;", inner);
    cw_line(w, "for (long i = 0; i < %lldL; i++)", inner);
    cw_line(w, "    xr[i] += g[i];");
    w->indent--;
    cw_line(w, "}");
    w->indent--;
    cw_line(w, "}");
    w->indent--;
    cw_line(w, "}");
    kernel_call(cg, n);
}
