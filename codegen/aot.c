/*
 * aot.c — ahead-of-time deployment sources: a model in, NAME.c + NAME.h
 * (+ NAME.bin, + the standalone program's glue) out, for `nncc compile`.
 *
 * NAME.c is one translation unit: the kernels nncc_codegen() emits for the
 * inference program (entry NAME_forward_) and, with training, for the step
 * autodiff builds (NAME_train_step_), exactly as the JIT compiles them, so
 * the artifact computes what nncc_predict computes; then the data (weights,
 * then with training the optimizer slots) as one 64-byte aligned const
 * array of IEEE bit patterns, unless it goes to NAME.bin; then a wrapper
 * layer that turns caller-owned regions into the entries' parameter arrays
 * and exposes the documented ABI of NAME.h (NAME_predict, NAME_predict_n,
 * NAME_data_check, NAME_train_init, NAME_train_step).  The unit's own
 * `nncc_abi_version` is renamed NAME_abi_version by a macro, so several
 * models link into one program.
 *
 * Layout: every weight of the model (layers in Keras order, each layer's
 * weights in order) at a 16-float (64-byte) aligned offset; slots likewise
 * in the state region.  Names from the model reach the output only through
 * cg_name() inside comments and c_string() inside string literals; every
 * identifier is NAME (nncc_aot_ident) plus fixed text, so no model or layer
 * name can produce invalid or unsafe C.
 */
#include <stdlib.h>
#include <string.h>
#include "aot.h"
#include "codegen/codegen.h"

#define AOT_ALIGN_FLOATS 16 /* 64 bytes */
#define AOT_STACK_BYTES (640L * 1024) /* GEMM packing buffers, per thread (see prelude) */

bool nncc_aot_ident(const char *text, char *buf, size_t size)
{
    NNCC_ASSERT(size > 3);
    const char *s = text ? text : "";
    size_t cap = size - 1 < 40 ? size - 1 : 40, j = 0;
    bool letter = (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z');
    bool same = letter;
    if (!letter && *s) {
        memcpy(buf, "m_", 2);
        j = 2;
    }
    for (; *s && j < cap; s++) {
        char c = *s;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_';
        same &= ok;
        buf[j++] = ok ? c : '_';
    }
    same &= *s == '\0';
    if (j == 0)
        j = (size_t)snprintf(buf, size, "model");
    buf[j] = '\0';
    return same;
}

/* Text as the body of a C string literal: printable ASCII except " \ ?
 * (no trigraphs) kept, anything else as three-digit octal escapes. */
static void c_string(struct cw *w, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p >= 0x20 && *p < 0x7f && *p != '"' && *p != '\\' && *p != '?')
            cw_raw(w, "%c", *p);
        else
            cw_raw(w, "\\%03o", *p);
    }
}

/* ---- Layout of the data ------------------------------------------------ */

struct region {
    const nncc_tensor **t;
    int64_t *off; /* floats from the region's start */
    int n;
    int64_t floats;
};

static void region_free(struct region *r)
{
    free(r->t);
    free(r->off);
}

static enum nncc_status region_add(struct region *r, const nncc_tensor *t, int cap)
{
    if (!r->t) {
        r->t = calloc((size_t)cap + 1, sizeof *r->t);
        r->off = calloc((size_t)cap + 1, sizeof *r->off);
        if (!r->t || !r->off)
            return nncc_fail(NNCC_ERR_NOMEM, "compile: out of memory");
    }
    NNCC_ASSERT(r->n < cap);
    r->t[r->n] = t;
    r->off[r->n++] = r->floats;
    int64_t size = ir_shape_numel(t->shape, 0);
    r->floats += (size + AOT_ALIGN_FLOATS - 1) / AOT_ALIGN_FLOATS * AOT_ALIGN_FLOATS;
    return NNCC_OK;
}

static int region_find(const struct region *r, const nncc_tensor *t)
{
    for (int i = 0; i < r->n; i++)
        if (r->t[i] == t)
            return i;
    return -1;
}

/* What the generator works from. */
struct aot {
    const struct nncc_aot_model *m;
    const struct nncc_aot_opts *o;
    const char *N;             /* the name prefix */
    char header[128];          /* the header's file name */
    struct region w, s;        /* weights; optimizer slots (training) */
    struct cg_entry entry[2];  /* forward; training step */
    int n_entries;
};

/* The parameter array of one entry: "w + OFF" / "s + OFF" per PARAM node. */
static enum nncc_status param_list(struct aot *a, const struct ir_program *p, struct cw *w,
                                   const char *wname, const char *sname)
{
    int k = 0;
    for (int i = 0; i < p->n_nodes; i++) {
        const nncc_tensor *t = p->nodes[i]->out;
        if (p->nodes[i]->op != IR_PARAM)
            continue;
        int wi = region_find(&a->w, t), si = region_find(&a->s, t);
        char nm[300];
        const char *sep = k == 0 ? "" : k % 4 == 0 ? ",\n        " : ", ";
        if (wi >= 0)
            cw_raw(w, "%s%s + %lldL", sep, wname, (long long)a->w.off[wi]);
        else if (si >= 0)
            cw_raw(w, "%s%s + %lldL", sep, sname, (long long)a->s.off[si]);
        else
            return nncc_fail(NNCC_ERR_GRAPH, "compile: parameter \"%s\" of model \"%s\" is "
                             "neither a weight of its layers nor an optimizer slot",
                             cg_name(t->name, nm, sizeof nm), a->m->name);
        k++;
    }
    cw_raw(w, "%s0", k ? ", " : ""); /* never an empty initializer */
    return NNCC_OK;
}

static void put_data(struct aot *a, unsigned char *bytes)
{
    const struct region *rs[2] = {&a->w, &a->s};
    int64_t base = 0;
    for (int r = 0; r < 2; r++) {
        for (int i = 0; i < rs[r]->n; i++) {
            const nncc_tensor *t = rs[r]->t[i];
            int64_t n = ir_shape_numel(t->shape, 0);
            for (int64_t j = 0; j < n; j++) {
                uint32_t u;
                memcpy(&u, &t->data[j], sizeof u);
                unsigned char *b = bytes + 4 * (base + rs[r]->off[i] + j);
                b[0] = (unsigned char)u, b[1] = (unsigned char)(u >> 8);
                b[2] = (unsigned char)(u >> 16), b[3] = (unsigned char)(u >> 24);
            }
        }
        base += rs[r]->floats;
    }
}

static uint64_t fnv1a(const unsigned char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

/* ---- NAME.h ------------------------------------------------------------ */

static void shape_dims(struct cw *w, struct nncc_shape s)
{
    for (int i = 1; i < s.rank; i++)
        cw_raw(w, "%s%lld", i > 1 ? ", " : "", (long long)s.dim[i]);
    if (s.rank < 2)
        cw_raw(w, "1"); /* a scalar per sample */
}

static void tensor_macros(struct cw *w, const char *N, const char *what, int k,
                          const nncc_tensor *t, bool one)
{
    char idx[16] = "";
    if (!one)
        snprintf(idx, sizeof idx, "%d", k);
    cw_raw(w, "#define %s_%s%s_RANK %d\n", N, what, idx, t->shape.rank > 1 ? t->shape.rank - 1 : 1);
    cw_raw(w, "#define %s_%s%s_DIMS {", N, what, idx);
    shape_dims(w, t->shape);
    cw_raw(w, "}\n#define %s_%s%s_SIZE %lldL /* floats per sample */\n", N, what, idx,
           (long long)ir_shape_numel(t->shape, 1));
}

static void gen_header(struct aot *a, struct cw *w, uint64_t hash, size_t data_len)
{
    const char *N = a->N;
    const struct ir_program *p = &a->m->forward->program;
    char buf[400], sh[200];
    const struct cg_entry *f = &a->entry[0];
    cw_raw(w, "/*\n * %s.h — the ABI of model \"%s\", generated by nncc %s (`nncc compile`", N,
           cg_name(a->m->name, buf, sizeof buf), NNCC_VERSION_STRING);
    cw_raw(w, "\n * from %s).\n *\n", cg_name(a->o->origin ? a->o->origin : "?", buf, sizeof buf));
    cw_raw(w, " * %s.c is C11 for GCC or Clang (it uses their vector extensions), with no\n"
              " * allocation and no I/O: it needs memcpy/memset and libm only.  Build it\n"
              " * optimized, e.g. `cc -O2 -march=native -c %s.c` (add -fopenmp to split large\n"
              " * kernels over threads).  Link with -lm.\n *\n", N, N);
    cw_raw(w, " * Inputs (float32, row-major, channels last; n rows):\n");
    for (int i = 0; i < p->n_inputs; i++)
        cw_raw(w, " *   %d \"%s\" %s\n", i, cg_name(p->inputs[i]->name, buf, sizeof buf),
               cg_shape(p->inputs[i]->shape, sh, sizeof sh));
    cw_raw(w, " * Outputs:\n");
    for (int i = 0; i < p->n_outputs; i++)
        cw_raw(w, " *   %d \"%s\" %s\n", i, cg_name(p->outputs[i]->name, buf, sizeof buf),
               cg_shape(p->outputs[i]->shape, sh, sizeof sh));
    cw_raw(w, " *\n * Memory: the caller owns every region and %s.c keeps no state, so calls\n"
              " * with separate workspaces may run at once.  Regions need only float\n"
              " * alignment; %s_ALIGN bytes is faster.  Sizes are in bytes:\n", N, N);
    cw_raw(w, " *   weights    %s_WEIGHTS_SIZE, %s\n", N,
           a->o->external_weights ? "the first bytes of " : "embedded in");
    cw_raw(w, " *              %s.%s (pass NULL to use them)\n", N,
           a->o->external_weights ? "bin: load it and pass its address" : "c");
    cw_raw(w, " *   workspace  %s_WORKSPACE_SIZE(n) for n rows (scratch, overwritten)\n", N);
    cw_raw(w, " *   inputs     n * %s_INPUT_SIZE floats; outputs n * %s_OUTPUT_SIZE floats\n", N,
           N);
    cw_raw(w, " *   stack      up to %s_STACK_SIZE per thread (GEMM packing buffers)\n", N);
    cw_raw(w, " *\n * Weights (Keras layouts), floats from the start of the weights region:\n");
    for (int i = 0; i < a->w.n; i++)
        cw_raw(w, " *   %-40s %-18s at %lld\n", cg_name(a->w.t[i]->name, buf, sizeof buf),
               ir_dims_str(a->w.t[i]->shape, sh, sizeof sh), (long long)a->w.off[i]);
    if (a->o->external_weights)
        cw_raw(w, " *\n * %s.bin holds exactly %s_DATA_SIZE bytes: little-endian IEEE float32,\n"
                  " * the weights, then the optimizer state (with --train).  %s_data_check()\n"
                  " * verifies a copy (size and FNV-1a hash).\n", N, N, N);
    cw_raw(w, " *\n * Example:\n"
              " *   static float ws[%s_WORKSPACE_SIZE(1) / sizeof(float)];\n"
              " *   float x[%s_INPUT_SIZE] = {...}, y[%s_OUTPUT_SIZE];\n"
              " *   if (%s_predict(%s, x, y, 1, ws) != %s_OK) ...\n */\n",
           N, N, N, N, a->o->external_weights ? "bin" : "NULL", N);
    cw_raw(w, "#ifndef %s_H\n#define %s_H\n\n#include <stddef.h>\n\n", N, N);
    cw_raw(w, "#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n");
    cw_raw(w, "#define %s_OK 0\n#define %s_ERR_ARG (-1)     /* n < 1, or a NULL region */\n"
              "#define %s_ERR_WEIGHTS (-2) /* weights NULL but not embedded; a bad copy */\n\n",
           N, N, N);
    cw_raw(w, "#define %s_NUM_INPUTS %d\n#define %s_NUM_OUTPUTS %d\n", N, p->n_inputs, N,
           p->n_outputs);
    for (int i = 0; i < p->n_inputs; i++)
        tensor_macros(w, N, "INPUT", i, p->inputs[i], p->n_inputs == 1);
    for (int i = 0; i < p->n_outputs; i++)
        tensor_macros(w, N, "OUTPUT", i, p->outputs[i], p->n_outputs == 1);
    cw_raw(w, "#define %s_BATCH %d /* rows per call in the standalone program */\n", N,
           a->o->batch);
    cw_raw(w, "#define %s_ALIGN 64\n", N);
    cw_raw(w, "#define %s_STACK_SIZE %ldL\n", N, AOT_STACK_BYTES);
    cw_raw(w, "#define %s_EMBEDDED_WEIGHTS %d\n", N, a->o->external_weights ? 0 : 1);
    cw_raw(w, "#define %s_WEIGHTS_SIZE %lldL\n", N, (long long)a->w.floats * 4);
    cw_raw(w, "#define %s_DATA_SIZE ((size_t)%zu) /* weights [+ optimizer state]: %s.bin */\n",
           N, data_len, N);
    cw_raw(w, "#define %s_DATA_FNV1A 0x%016llxULL\n", N, (unsigned long long)hash);
    cw_raw(w, "#define %s_WORKSPACE_SIZE(n) (sizeof(float) * ((size_t)%lld + (size_t)(n) * "
              "(size_t)%lld))\n\n",
           N, (long long)f->ws_fixed, (long long)f->ws_per_sample);
    cw_raw(w, "/* Runs the model on n rows: inputs[i] holds n * %s_INPUT<i>_SIZE floats,\n"
              " * outputs[k] receives n * %s_OUTPUT<k>_SIZE.  weights: NULL for the embedded\n"
              " * ones, else %s_WEIGHTS_SIZE bytes (%s.bin, or what %s_train_step updates).\n"
              " * Returns %s_OK, or %s_ERR_* and touches nothing. */\n",
           N, N, N, N, N, N, N);
    cw_raw(w, "int %s_predict_n(const float *weights, const float *const *inputs,\n"
              "    float *const *outputs, int n, void *workspace);\n", N);
    if (p->n_inputs == 1 && p->n_outputs == 1)
        cw_raw(w, "/* The same for the one input and output. */\n"
                  "int %s_predict(const float *weights, const float *input, float *output, int n,\n"
                  "    void *workspace);\n", N);
    cw_raw(w, "/* %s_OK when data holds size == %s_DATA_SIZE bytes with the hash above. */\n"
              "int %s_data_check(const void *data, size_t size);\n", N, N, N);
    if (a->m->train) {
        const struct nncc_aot_model *t = a->m;
        const struct cg_entry *s = &a->entry[1];
        cw_raw(w, "\n/* Training (--train): %s with Keras 2.15's formulas; the loss is\n"
                  " * %s.  Regions: weights %s_WEIGHTS_SIZE and optimizer state\n"
                  " * %s_STATE_SIZE bytes, both mutable, which %s_train_init fills from\n"
                  " * the embedded data (data NULL) or a copy of %s.bin. */\n",
               t->optimizer == NNCC_ADAM      ? "Adam"
               : t->optimizer == NNCC_SGD     ? "SGD"
               : t->optimizer == NNCC_ADAGRAD ? "Adagrad"
                                                        : "RMSprop",
               t->loss == NNCC_MEAN_SQUARED_ERROR              ? "mean squared error"
               : t->loss == NNCC_MEAN_ABSOLUTE_ERROR           ? "mean absolute error"
               : t->loss == NNCC_BINARY_CROSSENTROPY           ? "binary cross-entropy"
               : t->loss == NNCC_CATEGORICAL_CROSSENTROPY      ? "categorical cross-entropy"
                                                                    : "sparse categorical cross-entropy",
               N, N, N, N);
        cw_raw(w, "#define %s_STATE_SIZE %lldL\n", N, (long long)a->s.floats * 4);
        cw_raw(w, "#define %s_TARGET_SIZE %lldL /* floats of y per sample: %s */\n", N,
               (long long)ir_shape_numel(a->m->target, 1), cg_shape(a->m->target, sh, sizeof sh));
        cw_raw(w, "#define %s_NUM_LOGS %d /* loss", N, 1 + t->n_metrics);
        for (int k = 0; k < t->n_metrics; k++)
            cw_raw(w, ", %s", t->metric_names[k]);
        cw_raw(w, " */\n#define %s_LEARNING_RATE %.9g /* when exported */\n", N,
               (double)t->learning_rate);
        cw_raw(w, "#define %s_ITERATIONS %lldLL /* optimizer steps taken before export */\n", N,
               (long long)t->iterations);
        cw_raw(w, "#define %s_TRAIN_WORKSPACE_SIZE(n) (sizeof(float) * ((size_t)%lld + "
                  "(size_t)(n) * (size_t)%lld))\n",
               N, (long long)s->ws_fixed, (long long)s->ws_per_sample);
        cw_raw(w, "int %s_train_init(const void *data, float *weights, float *state);\n", N);
        cw_raw(w, "/* One optimizer step on n rows (x: n * %s_INPUT_SIZE, y: n *\n"
                  " * %s_TARGET_SIZE floats).  step counts from 1 (%s_ITERATIONS + 1 to\n"
                  " * continue); seed keys dropout masks.  logs receives the batch's loss and\n"
                  " * metrics (%s_NUM_LOGS floats), computed before the update. */\n",
               N, N, N, N);
        cw_raw(w, "int %s_train_step(float *weights, float *state, const float *x, const float *y,\n"
                  "    int n, double learning_rate, long long step, unsigned long long seed,\n"
                  "    float *logs, void *workspace);\n", N);
    }
    cw_raw(w, "\n#ifdef __cplusplus\n}\n#endif\n#endif\n");
}

/* ---- NAME.c ------------------------------------------------------------ */

static enum nncc_status gen_source(struct aot *a, struct cw *w, const char *unit,
                                   const unsigned char *data, size_t data_len)
{
    const char *N = a->N;
    const struct ir_program *p = &a->m->forward->program;
    char buf[400];
    cw_raw(w, "/*\n * %s.c — model \"%s\" for deployment, generated by nncc %s; the ABI\n", N,
           cg_name(a->m->name, buf, sizeof buf), NNCC_VERSION_STRING);
    cw_raw(w, " * is documented in %s.h.  The kernels are those nncc's JIT compiles; the\n"
              " * wrapper at the end maps caller-owned regions onto them.\n */\n", N);
    cw_raw(w, "#include \"%s\"\n#include <stdint.h>\n#include <string.h>\n\n", a->header);
    cw_raw(w, "_Static_assert(sizeof(float) == 4, \"%s.c needs IEEE float32\");\n", N);
    cw_raw(w, "#define nncc_abi_version %s_abi_version\n", N);
    cw_raw(w, "%s\n#undef nncc_abi_version\n\n", unit);
    size_t words = data_len / 4;
    if (!a->o->external_weights) {
        cw_raw(w, "/* Weights%s: little-endian IEEE float32 bit patterns. */\n",
               a->m->train ? ", then the optimizer state" : "");
        cw_raw(w, "static _Alignas(64) const union { uint32_t u[%zu]; float f[%zu]; } %s_data_ = "
                  "{{\n",
               words + 1, words + 1, N);
        for (size_t i = 0; i < words; i++) {
            uint32_t u = data[4 * i] | (uint32_t)data[4 * i + 1] << 8 |
                         (uint32_t)data[4 * i + 2] << 16 | (uint32_t)data[4 * i + 3] << 24;
            cw_raw(w, "0x%08xu,%s", u, i % 8 == 7 ? "\n" : "");
        }
        cw_raw(w, "0}};\n\n");
    }
    /* data_check */
    cw_raw(w, "int %s_data_check(const void *data, size_t size)\n{\n", N);
    cw_raw(w, "    const unsigned char *b = data;\n"
              "    uint64_t h = 0xcbf29ce484222325ull;\n"
              "    if (!data || size != %s_DATA_SIZE)\n        return %s_ERR_WEIGHTS;\n"
              "    for (size_t i = 0; i < size; i++)\n"
              "        h = (h ^ b[i]) * 0x100000001b3ull;\n"
              "    return h == %s_DATA_FNV1A ? %s_OK : %s_ERR_WEIGHTS;\n}\n\n",
           N, N, N, N, N);
    /* predict_n */
    cw_raw(w, "int %s_predict_n(const float *weights, const float *const *inputs,\n"
              "    float *const *outputs, int n, void *workspace)\n{\n", N);
    cw_raw(w, "    float none[1];\n    if (n < 1 || !inputs || !outputs)\n"
              "        return %s_ERR_ARG;\n", N);
    cw_raw(w, "    for (int i = 0; i < %d; i++)\n        if (!inputs[i])\n"
              "            return %s_ERR_ARG;\n", p->n_inputs, N);
    cw_raw(w, "    for (int i = 0; i < %d; i++)\n        if (!outputs[i])\n"
              "            return %s_ERR_ARG;\n", p->n_outputs, N);
    if (a->o->external_weights)
        cw_raw(w, "    if (!weights)\n        return %s_ERR_WEIGHTS;\n", N);
    else
        cw_raw(w, "    if (!weights)\n        weights = %s_data_.f;\n", N);
    cw_raw(w, "    if (!workspace) {\n        if (%s_WORKSPACE_SIZE(n) > 0)\n"
              "            return %s_ERR_ARG;\n        workspace = none;\n    }\n", N, N);
    cw_raw(w, "    const float *const p[] = {");
    enum nncc_status st = param_list(a, p, w, "weights", "weights");
    cw_raw(w, "};\n    %s(n, p, inputs, outputs, (float *)workspace);\n    return %s_OK;\n}\n\n",
           a->entry[0].name, N);
    if (p->n_inputs == 1 && p->n_outputs == 1)
        cw_raw(w, "int %s_predict(const float *weights, const float *input, float *output, int n,\n"
                  "    void *workspace)\n{\n"
                  "    return %s_predict_n(weights, &input, &output, n, workspace);\n}\n",
               N, N);
    if (!a->m->train || st)
        return st;
    /* train_init and train_step */
    const struct nncc_aot_model *t = a->m;
    cw_raw(w, "\nint %s_train_init(const void *data, float *weights, float *state)\n{\n", N);
    if (a->o->external_weights)
        cw_raw(w, "    if (!data)\n        return %s_ERR_WEIGHTS;\n    const float *d = data;\n", N);
    else
        cw_raw(w, "    const float *d = data ? (const float *)data : %s_data_.f;\n", N);
    cw_raw(w, "    if (!weights || (!state && %s_STATE_SIZE > 0))\n        return %s_ERR_ARG;\n"
              "    memcpy(weights, d, %s_WEIGHTS_SIZE);\n"
              "    if (%s_STATE_SIZE > 0)\n"
              "        memcpy(state, d + %s_WEIGHTS_SIZE / sizeof(float), %s_STATE_SIZE);\n"
              "    return %s_OK;\n}\n\n",
           N, N, N, N, N, N, N);
    cw_raw(w, "int %s_train_step(float *weights, float *state, const float *x, const float *y,\n"
              "    int n, double learning_rate, long long step, unsigned long long seed,\n"
              "    float *logs, void *workspace)\n{\n", N);
    cw_raw(w, "    float none[1];\n"
              "    if (n < 1 || !weights || (!state && %s_STATE_SIZE > 0) || !x || !y || !logs)\n"
              "        return %s_ERR_ARG;\n", N, N);
    cw_raw(w, "    if (!workspace) {\n        if (%s_TRAIN_WORKSPACE_SIZE(n) > 0)\n"
              "            return %s_ERR_ARG;\n        workspace = none;\n    }\n", N, N);
    cw_raw(w, "    if (!state)\n        state = none;\n");
    cw_raw(w, "    float *const p[] = {");
    st = param_list(a, &a->m->train->program, w, "weights", "state");
    cw_raw(w, "};\n    const float *const in[2] = {x, y};\n    float *out[%d];\n",
           1 + t->n_metrics);
    cw_raw(w, "    for (int k = 0; k < %d; k++)\n        out[k] = logs + k;\n", 1 + t->n_metrics);
    cw_raw(w, "    double h[%d];\n    h[%d] = learning_rate;\n    h[%d] = (double)step;\n"
              "    h[%d] = (double)(seed >> 11); /* 53 bits: exact in a double */\n",
           IR_HYPER_COUNT, IR_HYPER_LR, IR_HYPER_STEP, IR_HYPER_SEED);
    cw_raw(w, "    %s(n, p, in, out, (float *)workspace, h);\n    return %s_OK;\n}\n",
           a->entry[1].name, N);
    return st;
}

/* ---- The standalone program's glue -------------------------------------- */

static void gen_glue(struct aot *a, struct cw *w)
{
    const char *N = a->N;
    cw_raw(w, "/* %s_glue.c — model %s for the standalone program (codegen/aot/deploy.h). */\n",
           N, N);
    cw_raw(w, "#include \"%s\"\n#include \"deploy.h\"\n\n", a->header);
    cw_raw(w, "static const long in_dims[] = %s_INPUT_DIMS;\n", N);
    cw_raw(w, "static const long out_dims[] = %s_OUTPUT_DIMS;\n\n", N);
    cw_raw(w, "static size_t ws_bytes(int n) { return %s_WORKSPACE_SIZE(n); }\n\n", N);
    cw_raw(w, "static int predict(const float *in, float *out, int n, void *ws)\n{\n"
              "    return %s_predict(NULL, in, out, n, ws);\n}\n\n", N);
    cw_raw(w, "const struct nna_model nna_model = {\n    \"");
    c_string(w, a->m->name);
    cw_raw(w, "\", %s_INPUT_RANK, in_dims, %s_INPUT_SIZE, %s_OUTPUT_RANK, out_dims,\n"
              "    %s_OUTPUT_SIZE, %s_BATCH, ws_bytes, predict};\n", N, N, N, N, N);
}

/* ---- Driver ------------------------------------------------------------ */

enum nncc_status nncc_aot_generate(const struct nncc_aot_model *m, const struct nncc_aot_opts *o,
                                   struct nncc_aot *out)
{
    memset(out, 0, sizeof *out);
    char ident[64];
    if (!o->name || !nncc_aot_ident(o->name, ident, sizeof ident))
        return nncc_fail(NNCC_ERR_ARG, "compile: the name \"%s\" is not a C identifier",
                         o->name ? o->name : "(null)");
    if (o->batch < 1)
        return nncc_fail(NNCC_ERR_ARG, "compile: the batch must be positive, got %d", o->batch);
    struct aot a = {.m = m, .o = o, .N = o->name};
    snprintf(a.header, sizeof a.header, "%s%s", o->header ? o->header : o->name,
             o->header ? "" : ".h");
    for (const char *c = a.header; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '_' || *c == '-' || *c == '.'))
            return nncc_fail(NNCC_ERR_ARG, "compile: the header name must be letters, digits, "
                             "'_', '-' and '.'");
    enum nncc_status st = NNCC_OK;
    for (int i = 0; i < m->n_weights && !st; i++)
        if (region_find(&a.w, m->weights[i]) < 0)
            st = region_add(&a.w, m->weights[i], m->n_weights);
    for (int i = 0; m->train && i < m->n_slots && !st; i++)
        st = region_add(&a.s, m->slots[i], m->n_slots);
    char fname[80], tname[80];
    snprintf(fname, sizeof fname, "%s_forward_", o->name);
    snprintf(tname, sizeof tname, "%s_train_step_", o->name);
    a.entry[0] = (struct cg_entry){.plan = m->forward, .name = fname, .prefix = "f"};
    a.entry[1] = (struct cg_entry){.plan = m->train, .name = tname, .prefix = "t"};
    a.n_entries = m->train ? 2 : 1;
    char *unit = NULL;
    size_t unit_len = 0;
    if (!st)
        st = nncc_codegen(a.entry, a.n_entries, m->name, &unit, &unit_len);
    size_t data_len = (size_t)(a.w.floats + a.s.floats) * 4;
    unsigned char *data = st ? NULL : calloc(data_len + 4, 1);
    if (!st && !data)
        st = nncc_fail(NNCC_ERR_NOMEM, "compile: out of memory (%zu bytes of weights)", data_len);
    struct cw c = {0}, h = {0}, g = {0};
    if (!st) {
        put_data(&a, data);
        uint64_t hash = fnv1a(data, data_len);
        gen_header(&a, &h, hash, data_len);
        st = gen_source(&a, &c, unit, data, data_len);
        gen_glue(&a, &g);
        if (!st && (c.oom || h.oom || g.oom))
            st = nncc_fail(NNCC_ERR_NOMEM, "compile: out of memory (generated source)");
    }
    free(unit);
    region_free(&a.w);
    region_free(&a.s);
    if (st) {
        cw_free(&c);
        cw_free(&h);
        cw_free(&g);
        free(data);
        return st;
    }
    *out = (struct nncc_aot){.c = c.s, .c_len = c.len, .h = h.s, .h_len = h.len, .glue = g.s,
                             .glue_len = g.len, .data = data, .data_len = data_len,
                             .weight_bytes = a.w.floats * 4, .n_inputs = m->forward->program.n_inputs,
                             .n_outputs = m->forward->program.n_outputs};
    return NNCC_OK;
}

void nncc_aot_free(struct nncc_aot *a)
{
    if (!a)
        return;
    free(a->c);
    free(a->h);
    free(a->glue);
    free(a->data);
    memset(a, 0, sizeof *a);
}
