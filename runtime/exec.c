/*
 * exec.c — from a program to callable inference code.
 *
 * Generates the forward (codegen/), compiles it through the JIT cache with
 * -O2 -march=native and OpenMP (falling back to no OpenMP when the compiler
 * has none), loads it and checks its ABI version.  Parameters are passed by
 * pointer to their live values, so set_weights needs no recompile.
 */
#include <stdlib.h>
#include <string.h>
#include "exec.h"
#include "jit.h"
#include "../codegen/codegen.h"


void nncc_exec_free(struct nncc_exec *e)
{
    if (!e)
        return;
    if (e->handle)
        nncc_jit_unload(e->handle);
    free(e->params);
    free(e);
}

struct nncc_exec *nncc_exec_build(const struct ir_program *p, const char *model_name)
{
    char *src = NULL;
    size_t len = 0;
    int64_t ws = 0;
    struct nncc_exec *e = calloc(1, sizeof *e);
    if (!e)
        return NNCC_FAIL_NULL(NNCC_ERR_NOMEM, "out of memory");
    if (nncc_codegen_forward(p, model_name, &src, &len, &ws) != NNCC_OK)
        goto fail;
    e->ws_per_sample = ws;
    e->params = malloc(sizeof *e->params * (size_t)(p->n_nodes + 1));
    if (!e->params) {
        nncc_fail(NNCC_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (int i = 0; i < p->n_nodes; i++)
        if (p->nodes[i]->op == IR_PARAM)
            e->params[e->n_params++] = p->nodes[i]->out->data;

    struct nncc_jit jit;
    struct nncc_jit_result res = {0};
    if (nncc_jit_init(&jit) != NNCC_OK)
        goto fail;
    const char *flags = getenv("NNCC_JIT_FLAGS");
    if (!flags || !*flags)
        flags = "-O2 -march=native -fopenmp";
    enum nncc_status st = nncc_jit_compile(&jit, src, len, flags, &res);
    if (st != NNCC_OK && strstr(flags, "-fopenmp")) {
        /* A compiler without OpenMP still makes correct (serial) code. */
        free(res.diagnostics);
        res = (struct nncc_jit_result){0};
        st = nncc_jit_compile(&jit, src, len, "-O2 -march=native", &res);
    }
    free(res.diagnostics);
    if (st != NNCC_OK)
        goto fail;
    e->compile_s = res.compile_s;
    e->cache_hit = res.cache_hit;
    if (!(e->handle = nncc_jit_load(res.so_path)))
        goto fail;
    const long *abi = nncc_jit_symbol(e->handle, "nncc_abi_version", res.so_path);
    void *fwd = nncc_jit_symbol(e->handle, "nncc_forward", res.so_path);
    if (!abi || !fwd)
        goto fail;
    if (*abi != NNCC_ABI_VERSION) {
        nncc_fail(NNCC_ERR_COMPILE, "'%s' has ABI version %ld, expected %d", res.so_path, *abi,
                  NNCC_ABI_VERSION);
        goto fail;
    }
    memcpy(&e->forward, &fwd, sizeof e->forward);
    free(src);
    return e;
fail:
    free(src);
    nncc_exec_free(e);
    return NULL;
}
