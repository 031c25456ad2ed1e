/*
 * exec.c — from programs to callable code.
 *
 * Generates one translation unit for a set of entries (codegen/), compiles
 * it through the JIT cache with -O2 -march=native -fno-unroll-loops and OpenMP (falling back
 * to no OpenMP when the compiler has none; NNCC_JIT_FLAGS overrides), loads
 * it and checks its ABI version.  Parameters are passed by pointer to their
 * live values, so set_weights needs no recompile and an update step writes
 * the model's weights directly.
 */
#include <stdlib.h>
#include <string.h>
#include "runtime/jit/exec.h"
#include "runtime/jit/jit.h"

void nncc_exec_free(struct nncc_exec *e)
{
    if (!e)
        return;
    if (e->handle)
        nncc_jit_unload(e->handle);
    for (int i = 0; i < e->n_entries; i++)
        free(e->entry[i].params);
    free(e);
}

size_t nncc_exec_ws_floats(const struct nncc_exec_entry *e, int n)
{
    return (size_t)e->ws_fixed + (size_t)n * (size_t)e->ws_per_sample;
}

static void *symbol(struct nncc_exec *e, const char *name, const char *suffix, const char *path)
{
    char full[200];
    snprintf(full, sizeof full, "%s%s", name, suffix);
    return nncc_jit_symbol(e->handle, full, path);
}

struct nncc_exec *nncc_exec_build(struct cg_entry *entries, int n_entries, const char *model_name)
{
    NNCC_ASSERT(n_entries >= 1 && n_entries <= 2);
    char *src = NULL;
    size_t len = 0;
    struct nncc_exec *e = calloc(1, sizeof *e);
    if (!e)
        return NNCC_FAIL_NULL(NNCC_ERR_NOMEM, "out of memory");
    e->n_entries = n_entries;
    if (nncc_codegen(entries, n_entries, model_name, &src, &len) != NNCC_OK)
        goto fail;
    for (int k = 0; k < n_entries; k++) {
        const struct ir_program *p = &entries[k].plan->program;
        struct nncc_exec_entry *x = &e->entry[k];
        x->ws_fixed = entries[k].ws_fixed;
        x->ws_per_sample = entries[k].ws_per_sample;
        x->params = malloc(sizeof *x->params * (size_t)(p->n_nodes + 1));
        if (!x->params) {
            nncc_fail(NNCC_ERR_NOMEM, "out of memory");
            goto fail;
        }
        for (int i = 0; i < p->n_nodes; i++)
            if (p->nodes[i]->op == IR_PARAM)
                x->params[x->n_params++] = p->nodes[i]->out->data;
    }

    struct nncc_jit jit;
    struct nncc_jit_result res = {0};
    if (nncc_jit_init(&jit) != NNCC_OK)
        goto fail;
    const char *flags = getenv("NNCC_JIT_FLAGS");
    /* -fno-unroll-loops: the kernels' hot loops are unrolled by hand (the
     * GEMM micro-kernel) or vectorized anyway; letting the compiler unroll
     * every constant-trip loop triples compile time for no measured gain.
     * -fno-math-errno: no kernel reads errno, and with it sqrt() in the
     * optimizer updates becomes a vector instruction instead of a call. */
#ifdef NNCC_SANITIZED
    const char *dflt = "-O2 -march=native -fno-unroll-loops -fno-math-errno"; /* CMakeLists.txt: LSan vs libomp */
#else
    const char *dflt = "-O2 -march=native -fno-unroll-loops -fno-math-errno -fopenmp";
#endif
    if (!flags || !*flags)
        flags = dflt;
    enum nncc_status st = nncc_jit_compile(&jit, src, len, flags, &res);
    if (st != NNCC_OK && strstr(flags, "-fopenmp")) {
        /* A compiler without OpenMP still makes correct (serial) code. */
        free(res.diagnostics);
        res = (struct nncc_jit_result){0};
        st = nncc_jit_compile(&jit, src, len, "-O2 -march=native -fno-unroll-loops -fno-math-errno", &res);
    }
    free(res.diagnostics);
    if (st != NNCC_OK)
        goto fail;
    e->compile_s = res.compile_s;
    e->cache_hit = res.cache_hit;
    if (!(e->handle = nncc_jit_load(res.so_path)))
        goto fail;
    const long *abi = nncc_jit_symbol(e->handle, "nncc_abi_version", res.so_path);
    if (!abi)
        goto fail;
    if (*abi != NNCC_ABI_VERSION) {
        nncc_fail(NNCC_ERR_COMPILE, "'%s' has ABI version %ld, expected %d", res.so_path, *abi,
                  NNCC_ABI_VERSION);
        goto fail;
    }
    for (int k = 0; k < n_entries; k++) {
        void *fn = symbol(e, entries[k].name, "", res.so_path);
        if (!fn)
            goto fail;
        if (!entries[k].plan->step)
            memcpy(&e->entry[k].forward, &fn, sizeof fn);
        else
            memcpy(&e->entry[k].step, &fn, sizeof fn);
    }
    free(src);
    return e;
fail:
    free(src);
    nncc_exec_free(e);
    return NULL;
}
