/*
 * passes.h — the pass pipeline and its passes (internal).
 *
 * Each pass transforms a program (struct ir_program) in place and states its
 * contract at the top of its file.  nncc_pipeline_run() runs them in order,
 * verifies the IR after each, and prints it when NNCC_DUMP names the pass
 * (or is "all").
 */
#ifndef NNCC_PASSES_H
#define NNCC_PASSES_H

#include "../ir/ir.h"

enum nncc_status nncc_pipeline_run(struct ir_program *p, const char *model_name);

enum nncc_status pass_shapes(struct ir_program *p);

/* Whether NNCC_DUMP asks for the IR at this point ("all", or the name in a
 * comma-separated list). */
bool nncc_dump_wanted(const char *pass);

#endif
