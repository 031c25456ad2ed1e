/*
 * aot.h — ahead-of-time deployment sources (codegen/aot.c), internal.
 *
 * nncc_aot_generate() turns a model into the files `nncc compile` writes:
 * NAME.c (the kernels from nncc_codegen, the weights, and a wrapper layer
 * with a clean, documented ABI), NAME.h (that ABI), the bytes of NAME.bin
 * (the weights, and with training the optimizer state, as NAME.c embeds
 * them), and the glue that plugs the model into the standalone program
 * (codegen/aot/deploy_*.c, embedded as text).
 */
#ifndef NNCC_CODEGEN_AOT_H
#define NNCC_CODEGEN_AOT_H

#include "ir/plan.h"

struct nncc_aot_opts {
    const char *name;      /* a C identifier (nncc_aot_ident): prefix of every exported name */
    int batch;             /* NAME_BATCH: rows per call in the standalone program (> 0) */
    bool external_weights; /* the weights go to NAME.bin, which the caller passes in */
    const char *origin;    /* what the model came from, for the header's comment */
    const char *header;    /* the header's file name, as NAME.c includes it (default NAME.h;
                              letters, digits, '_', '-', '.' only) */
};

struct nncc_aot {
    char *c, *h, *glue;    /* NAME.c, NAME.h, NAME_glue.c (malloc'd, NUL-terminated) */
    size_t c_len, h_len, glue_len;
    unsigned char *data;   /* NAME.bin: little-endian float32 weights [+ state] */
    size_t data_len;
    int64_t weight_bytes;  /* the weights alone */
    int n_inputs, n_outputs;
};

/* What the generator needs of a model, lowered by the caller (nncc_lower):
 * codegen sees plans and values, not layers or training state. */
struct nncc_aot_model {
    const char *name;              /* the model's name */
    const struct ir_plan *forward; /* the inference forward */
    nncc_tensor **weights;         /* every weight, in NAME.bin's order */
    int n_weights;
    /* --train: the training step, and what its ABI documents. */
    const struct ir_plan *train;   /* NULL: inference only */
    nncc_tensor **slots;           /* optimizer state, after the weights in NAME.bin */
    int n_slots;
    struct nncc_shape target;      /* y, batch included */
    enum nncc_optimizer_kind optimizer;
    enum nncc_loss loss;
    int n_metrics;                 /* logs: the loss, then these metrics */
    const char *metric_names[4];
    float learning_rate;           /* at export */
    int64_t iterations;            /* optimizer steps taken before export */
};

/* Generates the sources; on failure everything is freed and the error set
 * (NNCC_ERR_ARG for a model that cannot be deployed as asked). */
enum nncc_status nncc_aot_generate(const struct nncc_aot_model *m, const struct nncc_aot_opts *o,
                                   struct nncc_aot *out);
void nncc_aot_free(struct nncc_aot *a);

/* A C identifier made from any text (letters, digits and '_'; other bytes
 * become '_'; one that would not start with a letter gets "m_" in front;
 * at most 40 characters; "model" for empty text).  Returns true when the
 * text already was such an identifier (unchanged). */
bool nncc_aot_ident(const char *text, char *buf, size_t size);

/* The standalone program's support files (codegen/aot/, embedded by CMake). */
extern const char nncc_aot_deploy_h_text[], nncc_aot_formats_h_text[], nncc_aot_formats_text[],
    nncc_aot_deploy_inflate_text[], nncc_aot_deploy_read_text[], nncc_aot_deploy_main_text[];
extern const size_t nncc_aot_deploy_h_len, nncc_aot_formats_h_len, nncc_aot_formats_len,
    nncc_aot_deploy_inflate_len, nncc_aot_deploy_read_len, nncc_aot_deploy_main_len;

#endif
