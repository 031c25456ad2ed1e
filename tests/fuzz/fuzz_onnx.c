/*
 * fuzz_onnx.c — libFuzzer harness for the ONNX reader and importer
 * (nncc_load_onnx: runtime/io/onnx_read.c, onnx_import.c and the lowering
 * of frontend/onnx_*.c) and for nncc_load_onnx_tensor.
 *
 * Each input is written to a temporary file and loaded both as a model and
 * as a tensor.  Invariants, for any input: on failure nncc_last_error() is
 * non-empty and names the file; a model that loads has a summary and
 * generates C for its inference; a tensor that loads has a positive size.
 */
#include "fuzz_util.h"
#include <stdlib.h>

static int in_file = -1;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (in_file < 0)
        in_file = fuzz_temp_file("onnx");
    const char *in = fuzz_path(in_file);
    fuzz_write(in_file, data, size);

    nncc_clear_error();
    nncc_model *m = nncc_load_onnx(in);
    if (!m) {
        fuzz_check_error("nncc_load_onnx", in, NULL);
    } else {
        FILE *sink = fopen("/dev/null", "w");
        if (!sink || nncc_summary(m, sink) != NNCC_OK)
            fuzz_die("an imported model has no summary: %s", nncc_last_error());
        fclose(sink);
        char *src = nncc_model_emit_c(m);
        if (!src)
            fuzz_die("an imported model generates no C: %s", nncc_last_error());
        free(src);
        nncc_model_free(m);
    }
    nncc_clear_error();
    struct nncc_array *t = nncc_load_onnx_tensor(in);
    if (!t)
        fuzz_check_error("nncc_load_onnx_tensor", in, NULL);
    else if (nncc_array_size(t) <= 0)
        fuzz_die("a loaded tensor has no elements");
    nncc_array_free(t);
    return 0;
}
