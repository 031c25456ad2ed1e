/*
 * fuzz_csv.c — libFuzzer harness for the CSV reader (runtime/io/data_csv.c).
 *
 * Each input is written to a temporary file and loaded with nncc_load_csv_()
 * under several options: the defaults, header, and the delimiters ';', tab
 * and space.  Invariants, for any input: a loaded array is (rows, columns)
 * with size == product of its shape > 0, at most one element per byte of the
 * file, and every value finite (nan and inf are refused); when the file loads
 * without a header, it loads with a header exactly when it has a second row,
 * as its rows from the second on; on failure nncc_last_error() is non-empty
 * and names the file.
 */
#include <math.h>

#include "fuzz_util.h"

static int csv_file = -1;

static struct nncc_array *load(const char *path, size_t size, struct nncc_csv_opts o)
{
    nncc_clear_error();
    struct nncc_array *a = nncc_load_csv_(path, o);
    if (!a) {
        fuzz_check_error("nncc_load_csv_", path, NULL);
        return NULL;
    }
    fuzz_check_array("nncc_load_csv_", a);
    if (a->shape.rank != 2) fuzz_die("nncc_load_csv_: rank %d, expected 2", a->shape.rank);
    int64_t n = nncc_array_size(a);
    if ((uint64_t)n > size)
        fuzz_die("nncc_load_csv_: %lld values from a file of %zu bytes", (long long)n, size);
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(a->data[i]))
            fuzz_die("nncc_load_csv_ (delimiter 0x%02x%s): value %lld is %g",
                     (unsigned char)o.delimiter, o.header ? ", header" : "", (long long)i,
                     a->data[i]);
    return a;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (csv_file < 0) csv_file = fuzz_temp_file("csv");
    const char *path = fuzz_path(csv_file);
    fuzz_write(csv_file, data, size);

    struct nncc_array *plain = load(path, size, (struct nncc_csv_opts){0});
    struct nncc_array *header = load(path, size, (struct nncc_csv_opts){.header = true});
    if (plain) {
        int64_t rows = plain->shape.dim[0], cols = plain->shape.dim[1];
        if (!header != (rows == 1))
            fuzz_die("%lld rows load without a header, but with a header it %s", (long long)rows,
                     header ? "loads" : "fails");
        if (header && (header->shape.dim[0] != rows - 1 || header->shape.dim[1] != cols ||
                       memcmp(header->data, plain->data + cols,
                              (size_t)((rows - 1) * cols) * sizeof(float))))
            fuzz_die("with a header, the file does not load as its rows from the second on");
    }
    nncc_array_free(plain);
    nncc_array_free(header);

    static const char delims[] = {';', '\t', ' '};
    for (size_t i = 0; i < sizeof delims; i++)
        nncc_array_free(load(path, size, (struct nncc_csv_opts){.delimiter = delims[i],
                                                                 .header = i == 1}));
    return 0;
}
