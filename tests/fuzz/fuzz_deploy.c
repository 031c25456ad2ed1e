/*
 * fuzz_deploy.c — libFuzzer harness for the standalone deployment
 * program's readers (codegen/aot/deploy_read.c, deploy_inflate.c and the
 * format parser formats.c, built into the harness as the program builds
 * them).
 *
 * Each input is decoded from memory as-is (auto-detected: gzip, .npy, IDX)
 * and as raw float32 rows of 3, from a heap copy of exactly its size, so
 * ASan sees any read past it.  Invariants: success gives count == product
 * of dims > 0 and no more values than the (decompressed) bytes allow; a
 * failure leaves a non-empty message and nothing allocated; nna_match_rows
 * never accepts a row count whose rows do not fit in count; read as a
 * stream in chunks of 1 to 7 bytes (as from a pipe), with its size known or
 * not, it gives the same answer: the same failure, or the same array.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "codegen/aot/deploy.h"
#include "tests/codegen/read_chunks.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static void die(const char *what)
{
    fprintf(stderr, "fuzz_deploy: %s\n", what);
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned char *copy = malloc(size ? size : 1);
    if (!copy)
        return 0;
    if (size)
        memcpy(copy, data, size);
    static const enum nna_format formats[] = {NNA_AUTO, NNA_RAW};
    for (int f = 0; f < 2; f++) {
        struct nna_array a;
        char err[400] = "";
        size_t step = size ? (size_t)copy[size - 1] % 7 + 1 : 1;
        if (nna_decode(copy, size, formats[f], 3, &a, err, sizeof err)) {
            if (!err[0] || a.data)
                die("a failure without a message, or with data left");
            if (!same_in_chunks(copy, size, formats[f], 3, step, size & 1, 0, NULL))
                die("read in chunks, it does not fail (or without a message)");
            continue;
        }
        if (!same_in_chunks(copy, size, formats[f], 3, step, size & 1, 1, &a))
            die("read in chunks, the array differs");
        uint64_t count = 1;
        for (int i = 0; i < a.rank; i++)
            count *= a.dims[i];
        if (count != a.count || count == 0 || !a.data)
            die("count is not the product of the dimensions");
        int gz = size >= 2 && copy[0] == 0x1f && copy[1] == 0x8b;
        if (!gz && a.count > size)
            die("more values than bytes");
        static const long dims[] = {3};
        uint64_t rows = nna_match_rows(&a, 1, dims, err, sizeof err);
        if (rows * 3 > a.count)
            die("rows past the data");
        float sum = 0;
        for (uint64_t i = 0; i < a.count; i++) /* every value is readable */
            sum += a.data[i];
        (void)sum;
        nna_array_free(&a);
    }
    free(copy);
    return 0;
}
