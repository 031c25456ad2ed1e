/*
 * optimizer.c — the optimizer update of one parameter, in place, as Keras
 * 2.15's optimizers compute it (keras/optimizers/): clip the gradient
 * (clipnorm per tensor, global_clipnorm by the joint norm, clipvalue per
 * element), then the rule.  The learning rate and the step t come from
 * h[] at run time, so changing them never recompiles.  Coefficients 1 − β
 * and 1 − ρ are computed from the decimal the user wrote (ir_decimal), as
 * Keras computes them from a Python float, then rounded to float.  Inputs: (param,
 * grad, slots…, [global norm]).
 */
#include "codegen/codegen.h"

void emit_update(struct cg *cg, const struct ir_node *n)
{
    const struct nncc_optimizer *o = &n->a.opt;
    long long size = cg_numel(n->in[0]);
    struct cw *w = &cg->defs;
    static const char *const kinds[] = {"default", "SGD", "Adam", "Adagrad", "RMSprop"};
    char what[300];
    snprintf(what, sizeof what, "%s update of \"%s\" (%lld values)", kinds[o->kind],
             n->in[0]->name, size);
    char safe[400];
    cg_kernel_comment(cg, n, cg_name(what, safe, sizeof safe));
    cw_line(w, "static void %sk%d(float *restrict w, const float *restrict g,", cg->prefix, cg_id(cg, n));
    cw_line(w, "               float *restrict s0, float *restrict s1, float *restrict s2,");
    cw_line(w, "               const float *restrict gnorm, const double *h)");
    cw_line(w, "{");
    w->indent++;
    cw_line(w, "(void)s0, (void)s1, (void)s2, (void)gnorm;");
    cw_line(w, "const float lr = (float)h[%d];", IR_HYPER_LR);
    cw_line(w, "const double t = h[%d];", IR_HYPER_STEP);
    cw_line(w, "(void)t;");
    cw_line(w, "float scale = 1.0f;");
    if (o->clipnorm > 0) {
        cw_line(w, "double sq = 0;");
        cw_line(w, "for (long i = 0; i < %lldL; i++)", size);
        cw_line(w, "    sq += (double)g[i] * g[i];");
        cw_line(w, "const float norm = (float)sqrt(sq);");
        cw_line(w, "scale = K(%.17g) / (norm > K(%.17g) ? norm : K(%.17g));", (double)o->clipnorm,
                (double)o->clipnorm, (double)o->clipnorm);
    }
    if (n->a.global_norm)
        cw_line(w, "scale = K(%.17g) / (gnorm[0] > K(%.17g) ? gnorm[0] : K(%.17g));",
                (double)o->global_clipnorm, (double)o->global_clipnorm,
                (double)o->global_clipnorm);
    if (o->kind == NNCC_ADAM)
        cw_line(w, "const float alpha = (float)(lr * sqrt(1.0 - pow(%.9g, t)) / (1.0 - pow(%.9g, t)));",
                (double)o->beta_2, (double)o->beta_1);
    /* The size is known here: small updates get no parallel region at all
     * (even a region that its if() keeps serial costs a runtime call). */
    if (size * 8 > 32768) {
        char work[64];
        snprintf(work, sizeof work, "%lldL", size * 8);
        cg_parallel_simd(w, work);
    }
    cw_line(w, "for (long i = 0; i < %lldL; i++) {", size);
    w->indent++;
    cw_line(w, "float gi = g[i] * scale;");
    if (o->clipvalue > 0)
        cw_line(w, "gi = gi < -K(%.17g) ? -K(%.17g) : gi > K(%.17g) ? K(%.17g) : gi;", (double)o->clipvalue,
                (double)o->clipvalue, (double)o->clipvalue, (double)o->clipvalue);
    switch (o->kind) {
    case NNCC_SGD:
        if (n->a.n_slots) {
            cw_line(w, "s0[i] = -gi * lr + s0[i] * K(%.17g);", (double)o->momentum);
            if (o->nesterov)
                cw_line(w, "w[i] += -gi * lr + s0[i] * K(%.17g);", (double)o->momentum);
            else
                cw_line(w, "w[i] += s0[i];");
        } else {
            cw_line(w, "w[i] -= lr * gi;");
        }
        break;
    case NNCC_ADAM:
        cw_line(w, "s0[i] += (gi - s0[i]) * K(%.17g);", 1.0 - ir_decimal(o->beta_1));
        cw_line(w, "s1[i] += (gi * gi - s1[i]) * K(%.17g);", 1.0 - ir_decimal(o->beta_2));
        if (o->amsgrad) {
            cw_line(w, "s2[i] = s2[i] > s1[i] ? s2[i] : s1[i];");
            cw_line(w, "w[i] -= s0[i] * alpha / (sqrt(s2[i]) + K(%.17g));", (double)o->epsilon);
        } else {
            cw_line(w, "w[i] -= s0[i] * alpha / (sqrt(s1[i]) + K(%.17g));", (double)o->epsilon);
        }
        break;
    case NNCC_ADAGRAD:
        cw_line(w, "s0[i] += gi * gi;");
        cw_line(w, "w[i] -= lr * gi / sqrt(s0[i] + K(%.17g));", (double)o->epsilon);
        break;
    case NNCC_RMSPROP: {
        const char *mom = o->momentum > 0 ? "s1" : NULL;
        const char *avg = o->centered ? (o->momentum > 0 ? "s2" : "s1") : NULL;
        cw_line(w, "s0[i] = K(%.17g) * s0[i] + K(%.17g) * gi * gi;", (double)o->rho,
                1.0 - ir_decimal(o->rho));
        if (avg) {
            cw_line(w, "%s[i] = K(%.17g) * %s[i] + K(%.17g) * gi;", avg, (double)o->rho, avg,
                    1.0 - ir_decimal(o->rho));
            cw_line(w, "const float inc = lr * gi / sqrt(s0[i] - %s[i] * %s[i] + K(%.17g));", avg, avg,
                    (double)o->epsilon);
        } else {
            cw_line(w, "const float inc = lr * gi / sqrt(s0[i] + K(%.17g));", (double)o->epsilon);
        }
        if (mom) {
            cw_line(w, "%s[i] = K(%.17g) * %s[i] + inc;", mom, (double)o->momentum, mom);
            cw_line(w, "w[i] -= %s[i];", mom);
        } else {
            cw_line(w, "w[i] -= inc;");
        }
        break;
    }
    case NNCC_OPTIMIZER_DEFAULT:
        NNCC_ASSERT(!"optimizer defaults are resolved by compile");
    }
    w->indent--;
    cw_line(w, "}");
    w->indent--;
    cw_line(w, "}");
    const char *slot[3] = {"NULL", "NULL", "NULL"};
    for (int k = 0; k < n->a.n_slots; k++)
        slot[k] = cg_buf(cg, n->in[2 + k]);
    cw_line(&cg->body, "%sk%d(%s, %s, %s, %s, %s, %s, h);", cg->prefix, cg_id(cg, n),
            cg_buf(cg, n->in[0]), cg_buf(cg, n->in[1]), slot[0], slot[1], slot[2],
            n->a.global_norm ? cg_buf(cg, n->in[n->n_in - 1]) : "NULL");
    /* The update's own value is a placeholder nothing reads: say so, or
     * -Wall warns about its buffer in deployment code (nncc compile --train). */
    cw_line(&cg->body, "(void)%s;", cg_buf(cg, n->out));
}
