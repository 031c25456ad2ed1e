/*
 * loss.c — the loss, its gradient and the metrics, as Keras 2.15 computes
 * them (see runtime/oracle/interp_train.c for the formulas; this file emits the
 * same arithmetic, with double accumulators for the batch sums).
 *
 * Rows are every position but the last axis; the loss and metrics are
 * means over rows (Keras' sum_over_batch_size).  On the stable path input 0
 * holds logits and the gradient is the fused softmax/sigmoid − y.
 *
 * The softmax losses' e^{z − max} are floats from nn_expf
 * (codegen/prelude/math.c, within an ulp), computed in a loop of their own
 * that vectorizes, then summed in double in a fixed order: libm's double
 * exp, one opaque call per element, took most of a small model's step.
 * The largest term is exactly 1, so p − y keeps its precision near p = 1.
 * The sigmoid losses keep double exp: their p − y has no such anchor.
 */
#include "codegen/codegen.h"

#define EPS "1e-7"
/* Rows up to this width keep their exponentials in a stack array. */
#define EXP_ROW 4096

/* Emits `sum += e^(z[c] − mx)` over the row, c in order (mx, sum: double),
 * the exponentials into e[] (float) when the row is at most EXP_ROW wide.
 * The max before it starts at -inf rather than z[0], as in
 * codegen/reduce.c's softmax, so that this loop vectorizes. */
static void sum_exp(struct cw *w, long long C)
{
    cw_line(w, "const float mxf = (float)mx; /* exact: mx is one of the z */");
    if (C <= EXP_ROW) {
        cw_line(w, "float e[%lld];", C);
        cw_line(w, "for (long c = 0; c < %lldL; c++)", C);
        cw_line(w, "    e[c] = nn_expf(z[c] - mxf);");
        cw_line(w, "for (long c = 0; c < %lldL; c++)", C);
        cw_line(w, "    sum += e[c];");
    } else {
        cw_line(w, "for (long c = 0; c < %lldL; c++)", C);
        cw_line(w, "    sum += nn_expf(z[c] - mxf);");
    }
}

/* The row's e^(z[c] − mx) after sum_exp. */
static const char *exp_of(long long C)
{
    return C <= EXP_ROW ? "e[c]" : "nn_expf(z[c] - mxf)";
}

static void dims(const struct ir_node *n, long long *rows, long long *C)
{
    struct nncc_shape s = n->in[0]->shape;
    *C = s.dim[s.rank - 1];
    *rows = cg_numel(n->in[0]) / *C;
}

static long long target_width(const struct ir_node *n, long long C)
{
    return n->a.loss == NNCC_SPARSE_CATEGORICAL_CROSSENTROPY ? 1 : C;
}

/* Emits `l = <the row's loss>` for row pointers z (pred/logits), t. */
static void row_loss(struct cw *w, const struct ir_attrs *a, long long C)
{
    switch (a->loss) {
    case NNCC_MEAN_SQUARED_ERROR:
    case NNCC_MEAN_ABSOLUTE_ERROR:
        cw_line(w, "for (long c = 0; c < %lldL; c++) {", C);
        cw_line(w, "    const double d = (double)z[c] - t[c];");
        cw_line(w, "    l += %s;", a->loss == NNCC_MEAN_SQUARED_ERROR ? "d * d" : "fabs(d)");
        cw_line(w, "}");
        cw_line(w, "l /= %lld.0;", C);
        break;
    case NNCC_BINARY_CROSSENTROPY:
        cw_line(w, "for (long c = 0; c < %lldL; c++) {", C);
        if (a->logits) {
            cw_line(w, "    const double v = z[c];");
            cw_line(w, "    l += (v > 0 ? v : 0.0) - v * t[c] + log1p(exp(-fabs(v)));");
        } else {
            cw_line(w, "    const double p = fmin(fmax((double)z[c], " EPS "), 1 - " EPS ");");
            cw_line(w, "    l -= t[c] * log(p + " EPS ") + (1 - t[c]) * log(1 - p + " EPS ");");
        }
        cw_line(w, "}");
        cw_line(w, "l /= %lld.0;", C);
        break;
    case NNCC_CATEGORICAL_CROSSENTROPY:
        if (a->logits) {
            cw_line(w, "double mx = -INFINITY, sum = 0, ty = 0;");
            cw_line(w, "for (long c = 0; c < %lldL; c++)", C);
            cw_line(w, "    mx = z[c] > mx ? z[c] : mx;");
            sum_exp(w, C);
            cw_line(w, "for (long c = 0; c < %lldL; c++) {", C);
            cw_line(w, "    l -= (double)t[c] * z[c];");
            cw_line(w, "    ty += t[c];");
            cw_line(w, "}");
            cw_line(w, "l += ty * (mx + log(sum));");
        } else {
            cw_line(w, "double s = 0;");
            cw_line(w, "for (long c = 0; c < %lldL; c++)", C);
            cw_line(w, "    s += z[c];");
            cw_line(w, "for (long c = 0; c < %lldL; c++)", C);
            cw_line(w, "    l -= t[c] * log(fmin(fmax(z[c] / s, " EPS "), 1 - " EPS "));");
        }
        break;
    case NNCC_SPARSE_CATEGORICAL_CROSSENTROPY:
        cw_line(w, "const long k = (long)t[0];");
        if (a->logits) {
            cw_line(w, "double mx = -INFINITY, sum = 0;");
            cw_line(w, "for (long c = 0; c < %lldL; c++)", C);
            cw_line(w, "    mx = z[c] > mx ? z[c] : mx;");
            sum_exp(w, C);
            cw_line(w, "l = mx + log(sum) - z[k];");
        } else {
            cw_line(w, "double s = 0;");
            cw_line(w, "for (long c = 0; c < %lldL; c++)", C);
            cw_line(w, "    s += fmin(fmax((double)z[c], " EPS "), 1 - " EPS ");");
            cw_line(w, "l = -log(fmin(fmax((double)z[k], " EPS "), 1 - " EPS ") / s);");
        }
        break;
    case NNCC_LOSS_NONE:
        NNCC_ASSERT(!"unknown loss");
    }
}

void emit_loss(struct cg *cg, const struct ir_node *n)
{
    long long rows, C;
    dims(n, &rows, &C);
    long long tw = target_width(n, C);
    struct cw *w = &cg->defs;
    char what[200], s[100];
    snprintf(what, sizeof what, "loss %d%s over %s", (int)n->a.loss, n->a.logits ? " (logits)" : "",
             cg_shape(n->in[0]->shape, s, sizeof s));
    cg_kernel_comment(cg, n, what);
    cw_line(w, "static void %sk%d(int n, const float *restrict zs, const float *restrict ts,",
            cg->prefix, cg_id(cg, n));
    cw_line(w, "               float *restrict out)");
    cw_line(w, "{");
    w->indent++;
    cw_line(w, "const long rows = (long)n * %lldL;", rows);
    cw_line(w, "double total = 0;");
    cw_line(w, "for (long r = 0; r < rows; r++) {");
    w->indent++;
    cw_line(w, "const float *restrict z = zs + r * %lldL, *restrict t = ts + r * %lldL;", C, tw);
    cw_line(w, "double l = 0;");
    row_loss(w, &n->a, C);
    cw_line(w, "total += l;");
    w->indent--;
    cw_line(w, "}");
    cw_line(w, "out[0] = (float)(total / (double)rows);");
    w->indent--;
    cw_line(w, "}");
    cw_line(&cg->body, "%sk%d(n, %s, %s, %s);", cg->prefix, cg_id(cg, n), cg_buf(cg, n->in[0]),
            cg_buf(cg, n->in[1]), cg_buf(cg, n->out));
}

void emit_loss_grad(struct cg *cg, const struct ir_node *n)
{
    const struct ir_attrs *a = &n->a;
    long long rows, C;
    dims(n, &rows, &C);
    long long tw = target_width(n, C);
    struct cw *w = &cg->defs;
    char what[200], s[100];
    snprintf(what, sizeof what, "gradient of loss %d%s over %s", (int)a->loss,
             a->logits ? " (logits: p - y)" : "", cg_shape(n->in[0]->shape, s, sizeof s));
    cg_kernel_comment(cg, n, what);
    cw_line(w, "static void %sk%d(int n, const float *restrict zs, const float *restrict ts,",
            cg->prefix, cg_id(cg, n));
    cw_line(w, "               float *restrict gs)");
    cw_line(w, "{");
    w->indent++;
    cw_line(w, "const long rows = (long)n * %lldL;", rows);
    cw_line(w, "const double R = (double)rows, RC = R * %lld.0;", C);
    cw_line(w, "(void)RC;");
    cw_line(w, "for (long r = 0; r < rows; r++) {");
    w->indent++;
    cw_line(w, "const float *restrict z = zs + r * %lldL, *restrict t = ts + r * %lldL;", C, tw);
    cw_line(w, "float *restrict g = gs + r * %lldL;", C);
    switch (a->loss) {
    case NNCC_MEAN_SQUARED_ERROR:
        cw_line(w, "for (long c = 0; c < %lldL; c++)", C);
        cw_line(w, "    g[c] = (float)(2.0 * ((double)z[c] - t[c]) / RC);");
        break;
    case NNCC_MEAN_ABSOLUTE_ERROR:
        cw_line(w, "for (long c = 0; c < %lldL; c++) {", C);
        cw_line(w, "    const double d = (double)z[c] - t[c];");
        cw_line(w, "    g[c] = (float)((d > 0 ? 1.0 : d < 0 ? -1.0 : 0.0) / RC);");
        cw_line(w, "}");
        break;
    case NNCC_BINARY_CROSSENTROPY:
        cw_line(w, "for (long c = 0; c < %lldL; c++) {", C);
        if (a->logits) {
            cw_line(w, "    g[c] = (float)((1.0 / (1.0 + exp(-(double)z[c])) - t[c]) / RC);");
        } else {
            cw_line(w, "    const double v = z[c], p = fmin(fmax(v, " EPS "), 1 - " EPS ");");
            cw_line(w, "    g[c] = v >= " EPS " && v <= 1 - " EPS);
            cw_line(w, "               ? (float)((-t[c] / (p + " EPS ") + (1 - t[c]) / (1 - p + " EPS
                       ")) / RC)");
            cw_line(w, "               : 0.0f;");
        }
        cw_line(w, "}");
        break;
    case NNCC_CATEGORICAL_CROSSENTROPY:
        if (a->logits) {
            cw_line(w, "double mx = -INFINITY, sum = 0, ty = 0;");
            cw_line(w, "for (long c = 0; c < %lldL; c++)", C);
            cw_line(w, "    mx = z[c] > mx ? z[c] : mx;");
            sum_exp(w, C);
            cw_line(w, "for (long c = 0; c < %lldL; c++)", C);
            cw_line(w, "    ty += t[c];");
            cw_line(w, "for (long c = 0; c < %lldL; c++)", C);
            cw_line(w, "    g[c] = (float)((%s / sum * ty - t[c]) / R);", exp_of(C));
        } else {
            cw_line(w, "double S = 0, common = 0;");
            cw_line(w, "for (long c = 0; c < %lldL; c++)", C);
            cw_line(w, "    S += z[c];");
            cw_line(w, "for (long c = 0; c < %lldL; c++) {", C);
            cw_line(w, "    const double q = z[c] / S;");
            cw_line(w, "    if (q >= " EPS " && q <= 1 - " EPS ")");
            cw_line(w, "        common += t[c] * z[c] / q;");
            cw_line(w, "}");
            cw_line(w, "for (long c = 0; c < %lldL; c++) {", C);
            cw_line(w, "    const double q = z[c] / S;");
            cw_line(w, "    const double own = q >= " EPS " && q <= 1 - " EPS " ? t[c] / q : 0.0;");
            cw_line(w, "    g[c] = (float)((-own / S + common / (S * S)) / R);");
            cw_line(w, "}");
        }
        break;
    case NNCC_SPARSE_CATEGORICAL_CROSSENTROPY:
        cw_line(w, "const long k = (long)t[0];");
        if (a->logits) {
            cw_line(w, "double mx = -INFINITY, sum = 0;");
            cw_line(w, "for (long c = 0; c < %lldL; c++)", C);
            cw_line(w, "    mx = z[c] > mx ? z[c] : mx;");
            sum_exp(w, C);
            cw_line(w, "for (long c = 0; c < %lldL; c++)", C);
            cw_line(w, "    g[c] = (float)((%s / sum - (c == k)) / R);", exp_of(C));
        } else {
            cw_line(w, "double s = 0;");
            cw_line(w, "for (long c = 0; c < %lldL; c++)", C);
            cw_line(w, "    s += fmin(fmax((double)z[c], " EPS "), 1 - " EPS ");");
            cw_line(w, "for (long c = 0; c < %lldL; c++) {", C);
            cw_line(w, "    const double v = z[c], p = fmin(fmax(v, " EPS "), 1 - " EPS ");");
            cw_line(w, "    g[c] = v >= " EPS " && v <= 1 - " EPS);
            cw_line(w, "               ? (float)(((c == k ? -1.0 / p : 0.0) + 1.0 / s) / R) : 0.0f;");
            cw_line(w, "}");
        }
        break;
    case NNCC_LOSS_NONE:
        NNCC_ASSERT(!"unknown loss");
    }
    w->indent--;
    cw_line(w, "}");
    w->indent--;
    cw_line(w, "}");
    cw_line(&cg->body, "%sk%d(n, %s, %s, %s);", cg->prefix, cg_id(cg, n), cg_buf(cg, n->in[0]),
            cg_buf(cg, n->in[1]), cg_buf(cg, n->out));
}

/* A metric's batch value: a mean over rows (or elements for the
 * element-wise ones); inputs (pred, target). */
void emit_metric(struct cg *cg, const struct ir_node *n)
{
    long long rows, C;
    dims(n, &rows, &C);
    struct cw *w = &cg->defs;
    static const char *const names[] = {"binary accuracy", "categorical accuracy",
                                        "sparse categorical accuracy", "mean squared error",
                                        "mean absolute error"};
    cg_kernel_comment(cg, n, names[n->a.metric]);
    cw_line(w, "static void %sk%d(int n, const float *restrict p, const float *restrict t,",
            cg->prefix, cg_id(cg, n));
    cw_line(w, "               float *restrict out)");
    cw_line(w, "{");
    w->indent++;
    cw_line(w, "const long rows = (long)n * %lldL;", rows);
    cw_line(w, "double sum = 0;");
    switch (n->a.metric) {
    case IR_METRIC_BINARY_ACCURACY:
        cw_line(w, "for (long i = 0; i < rows * %lldL; i++)", C);
        cw_line(w, "    sum += t[i] == (p[i] > 0.5f ? 1.0f : 0.0f);");
        cw_line(w, "out[0] = (float)(sum / (double)(rows * %lldL));", C);
        break;
    case IR_METRIC_CATEGORICAL_ACCURACY:
    case IR_METRIC_SPARSE_ACCURACY:
        cw_line(w, "for (long r = 0; r < rows; r++) {");
        cw_line(w, "    long bp = 0, bt = 0;");
        cw_line(w, "    for (long c = 1; c < %lldL; c++) {", C);
        cw_line(w, "        bp = p[r * %lldL + c] > p[r * %lldL + bp] ? c : bp;", C, C);
        if (n->a.metric == IR_METRIC_CATEGORICAL_ACCURACY)
            cw_line(w, "        bt = t[r * %lldL + c] > t[r * %lldL + bt] ? c : bt;", C, C);
        cw_line(w, "    }");
        if (n->a.metric == IR_METRIC_CATEGORICAL_ACCURACY)
            cw_line(w, "    sum += bp == bt;");
        else
            cw_line(w, "    sum += (float)bp == t[r];");
        cw_line(w, "    (void)bt;");
        cw_line(w, "}");
        cw_line(w, "out[0] = (float)(sum / (double)rows);");
        break;
    case IR_METRIC_MSE:
    case IR_METRIC_MAE:
        cw_line(w, "for (long i = 0; i < rows * %lldL; i++) {", C);
        cw_line(w, "    const double d = (double)p[i] - t[i];");
        cw_line(w, "    sum += %s;", n->a.metric == IR_METRIC_MSE ? "d * d" : "fabs(d)");
        cw_line(w, "}");
        cw_line(w, "out[0] = (float)(sum / (double)(rows * %lldL));", C);
        break;
    }
    w->indent--;
    cw_line(w, "}");
    cw_line(&cg->body, "%sk%d(n, %s, %s, %s);", cg->prefix, cg_id(cg, n), cg_buf(cg, n->in[0]),
            cg_buf(cg, n->in[1]), cg_buf(cg, n->out));
}
