/*
 * fuzz_model.c — libFuzzer harness for the model loader (nncc_load:
 * runtime/io/model_io.c, runtime/io/safetensors.c, frontend/serialize.c) and
 * the weights-only loader.
 *
 * Each input is written to a temporary file and loaded with nncc_load().
 * Invariants, for any input: on failure nncc_last_error() is non-empty and
 * names the file; a model that loads has a summary, generates C for its
 * inference, and saves and loads back.  nncc_load_weights() is also run on
 * a small fixed model: it must either load or fail naming the file.
 */
#include "fuzz_util.h"
#include <stdlib.h>

static int in_file = -1, out_file;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (in_file < 0) {
        in_file = fuzz_temp_file("model");
        out_file = fuzz_temp_file("model-out");
    }
    const char *in = fuzz_path(in_file), *out = fuzz_path(out_file);
    fuzz_write(in_file, data, size);

    nncc_clear_error();
    nncc_model *m = nncc_load(in);
    if (!m) {
        fuzz_check_error("nncc_load", in, NULL);
    } else {
        FILE *sink = fopen("/dev/null", "w");
        if (!sink || nncc_summary(m, sink) != NNCC_OK)
            fuzz_die("a loaded model has no summary: %s", nncc_last_error());
        fclose(sink);
        char *src = nncc_model_emit_c(m);
        if (!src)
            fuzz_die("a loaded model generates no C: %s", nncc_last_error());
        free(src);
        if (nncc_save(m, out) != NNCC_OK)
            fuzz_die("a loaded model does not save: %s", nncc_last_error());
        nncc_model *again = nncc_load(out);
        if (!again)
            fuzz_die("a saved model does not load back: %s", nncc_last_error());
        nncc_model_free(again);
        nncc_model_free(m);
    }

    /* The weights-only loader on a fixed two-layer model. */
    nncc_model *w = nncc_sequential(NNCC_LAYERS(
        nncc_dense_layer(.units = 3, .input_shape = NNCC_SHAPE(4)), nncc_dense_layer(.units = 2)));
    if (!w)
        fuzz_die("cannot build the fixed model: %s", nncc_last_error());
    nncc_clear_error();
    if (nncc_load_weights(w, in) != NNCC_OK)
        fuzz_check_error("nncc_load_weights", in, NULL);
    nncc_model_free(w);
    return 0;
}
