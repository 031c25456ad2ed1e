/*
 * fuzz_npy.c — libFuzzer harness for the .npy reader (runtime/io/data_npy.c,
 * which parses with codegen/aot/formats.c).
 *
 * Each input is written to a temporary file and loaded with nncc_load_npy().
 * Invariants, for any input: a loaded array has size == product of its shape
 * > 0 and no more elements than the file has bytes; it saves with
 * nncc_save_npy() and loads back bit-identical; on failure nncc_last_error()
 * is non-empty and names the file.
 */
#include "fuzz_util.h"

static int in_file = -1, out_file;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (in_file < 0) {
        in_file = fuzz_temp_file("npy");
        out_file = fuzz_temp_file("npy-out");
    }
    const char *in = fuzz_path(in_file), *out = fuzz_path(out_file);
    fuzz_write(in_file, data, size);

    nncc_clear_error();
    struct nncc_array *a = nncc_load_npy(in);
    if (!a) {
        fuzz_check_error("nncc_load_npy", in, NULL);
        return 0;
    }
    fuzz_check_array("nncc_load_npy", a);
    if ((uint64_t)nncc_array_size(a) > size)
        fuzz_die("nncc_load_npy: %lld elements from a file of %zu bytes",
                 (long long)nncc_array_size(a), size);

    nncc_clear_error();
    if (nncc_save_npy(out, a) != NNCC_OK)
        fuzz_die("nncc_save_npy of a loaded array failed: %s", nncc_last_error());
    struct nncc_array *b = nncc_load_npy(out);
    if (!b) fuzz_die("a saved array does not load back: %s", nncc_last_error());
    fuzz_check_array("nncc_load_npy (round trip)", b);
    if (!fuzz_same_array(a, b)) fuzz_die("a saved array loads back different");
    nncc_array_free(b);
    nncc_array_free(a);
    return 0;
}
