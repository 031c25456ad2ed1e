/*
 * writer.c — a small indenting writer for generated C, and the helpers
 * every emitter shares (buffer names, safe names in comments, shapes).
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include "codegen/codegen.h"

static void vput(struct cw *w, bool line, const char *fmt, va_list ap)
{
    if (w->oom)
        return;
    va_list ap2;
    va_copy(ap2, ap);
    int need = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    size_t extra = (size_t)need + (line ? (size_t)w->indent * 4 + 2 : 1);
    if (w->len + extra + 1 > w->cap) {
        size_t cap = w->cap ? w->cap : 4096;
        while (cap < w->len + extra + 1)
            cap *= 2;
        char *s = realloc(w->s, cap);
        if (!s) {
            w->oom = true;
            return;
        }
        w->s = s;
        w->cap = cap;
    }
    if (line && need > 0)
        for (int i = 0; i < w->indent * 4; i++)
            w->s[w->len++] = ' ';
    vsnprintf(w->s + w->len, w->cap - w->len, fmt, ap);
    w->len += (size_t)need;
    if (line)
        w->s[w->len++] = '\n';
    w->s[w->len] = '\0';
}

void cw_line(struct cw *w, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vput(w, true, fmt, ap);
    va_end(ap);
}

void cw_raw(struct cw *w, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vput(w, false, fmt, ap);
    va_end(ap);
}

void cw_free(struct cw *w)
{
    free(w->s);
    memset(w, 0, sizeof *w);
}

const char *cg_buf(const struct cg *cg, const nncc_tensor *t)
{
    NNCC_ASSERT(cg->buf[t->id] != NULL);
    return cg->buf[t->id];
}

/* Keeps letters, digits and a few harmless marks; anything else (a '*' that
 * could close the comment, a newline, a non-ASCII byte) becomes \xNN. */
const char *cg_name(const char *name, char *buf, size_t size)
{
    size_t j = 0;
    for (const unsigned char *p = (const unsigned char *)name; *p && j + 5 < size; p++) {
        unsigned char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-' || c == '.' || c == ' ' || c == ':' || c == '/';
        if (ok)
            buf[j++] = (char)c;
        else
            j += (size_t)snprintf(buf + j, size - j, "\\x%02x", c);
    }
    buf[j] = '\0';
    return buf;
}

const char *cg_shape(struct nncc_shape s, char *buf, size_t size)
{
    size_t len = (size_t)snprintf(buf, size, "(");
    for (int i = 0; i < s.rank && len < size; i++) {
        if (s.dim[i] < 0 || i == 0)
            len += (size_t)snprintf(buf + len, size - len, "%sn", i ? ", " : "");
        else
            len += (size_t)snprintf(buf + len, size - len, "%s%lld", i ? ", " : "",
                                    (long long)s.dim[i]);
    }
    if (len < size)
        snprintf(buf + len, size - len, ")");
    return buf;
}

int64_t cg_numel(const nncc_tensor *t) { return ir_shape_numel(t->shape, t->batched ? 1 : 0); }

void cg_kernel_comment(struct cg *cg, const struct ir_node *n, const char *what)
{
    char name[400], sh[200];
    cw_raw(&cg->defs, "\n");
    cw_line(&cg->defs, "/* %s \"%s\": %s -> %s */", ir_op(n->op)->name,
            cg_name(n->name, name, sizeof name), what, cg_shape(n->out->shape, sh, sizeof sh));
}

void cg_parallel_if(struct cw *w, const char *cond)
{
    cw_raw(w, "#ifdef _OPENMP\n");
    cw_raw(w, "#pragma omp parallel for schedule(static) if(%s)\n", cond);
    cw_raw(w, "#endif\n");
}

void cg_simd(struct cw *w)
{
    cw_raw(w, "#ifdef _OPENMP\n");
    cw_raw(w, "#pragma omp simd\n");
    cw_raw(w, "#endif\n");
}

void cg_parallel_simd(struct cw *w, const char *work)
{
    cw_raw(w, "#ifdef _OPENMP\n");
    cw_raw(w, "#pragma omp parallel for simd schedule(static) if((%s) > 32768L)\n", work);
    cw_raw(w, "#endif\n");
}

void cg_sum_eight(struct cw *w, long long count, const char *part, long long stride,
                  const char *dst)
{
    cw_line(w, "for (long i_ = 0; i_ < %lldL; i_++) {", count);
    cw_line(w, "    float s_ = 0.0f;");
    cw_line(w, "    for (int q_ = 0; q_ < 8; q_++)");
    cw_line(w, "        s_ += %s[q_ * %lldL + i_];", part, stride);
    cw_line(w, "    %s[i_] = s_;", dst);
    cw_line(w, "}");
}

void cg_parallel_or_serial(struct cw *w, const char *cond, const char *loop, struct cw *body)
{
    w->oom |= body->oom;
    cw_raw(w, "#ifdef _OPENMP\n");
    cw_line(w, "if (%s) {", cond);
    cw_raw(w, "#pragma omp parallel for schedule(static)\n");
    cw_line(w, "%s", loop);
    cw_raw(w, "%s", body->s ? body->s : "");
    cw_line(w, "}");
    cw_line(w, "} else");
    cw_raw(w, "#endif\n");
    cw_line(w, "%s", loop);
    cw_raw(w, "%s", body->s ? body->s : "");
    cw_line(w, "}");
}

void cg_parallel(struct cw *w, const char *work)
{
    cw_raw(w, "#ifdef _OPENMP\n");
    cw_raw(w, "#pragma omp parallel for schedule(static) if((%s) > 32768L)\n", work);
    cw_raw(w, "#endif\n");
}
