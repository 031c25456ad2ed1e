/*
 * run_model.c — `nncc run MODEL-FILE --input FILE`: a saved model (nncc's
 * .safetensors, Keras' .keras / .h5, ONNX) run through the library on a data
 * file, with the interface of the programs `nncc compile` makes: one class
 * per line, or every output to --output FILE.npy, and the accuracy against
 * --labels.  It saves compiling a program to try a model on data.
 *
 * Input: .npy, or IDX (gzip-compressed or not), whose 8-bit values are
 * scaled by 1/255 unless --scale says otherwise (as the programs do).  Rows
 * whose size equals the model input's are reshaped to it (IDX images
 * (n, 28, 28) feed a (None, 28, 28, 1) input).  Labels: IDX or .npy, class
 * numbers or one-hot rows.  Errors exit 2 (usage, data) or 1 (the model).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli/cli.h"

static const char usage_run_model[] =
    "usage: nncc run MODEL --input FILE [--output FILE.npy] [--labels FILE] [--scale S]\n"
    "\n"
    "MODEL is a saved model: FILE.safetensors (nncc_save), Keras' FILE.keras or\n"
    "FILE.h5, or FILE.onnx.  Runs it on the rows of --input (.npy, or IDX, gzip or\n"
    "not; 8-bit IDX data is scaled by 1/255 unless --scale) and prints each row's\n"
    "class (the index of its largest output), or writes every output to --output.\n"
    "With --labels (IDX or .npy: class numbers or one-hot rows) it prints the\n"
    "accuracy instead of the classes.\n";

static bool ends(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static struct nncc_array *load_data(const char *path, bool *is_idx)
{
    *is_idx = !ends(path, ".npy");
    return *is_idx ? nncc_load_idx_file(path) : nncc_load_npy(path);
}

static int64_t argmax(const float *row, int64_t n)
{
    int64_t best = 0;
    for (int64_t i = 1; i < n; i++)
        if (row[i] > row[best])
            best = i;
    return best;
}

int cli_run_model(int argc, char **argv)
{
    const char *model_path = argv[0], *input = NULL, *output = NULL, *labels = NULL;
    double scale = NAN;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(usage_run_model, stdout);
            return 0;
        }
        if (i + 1 >= argc)
            return usage_error("run", "%s needs a value (or is unknown)", a);
        if (strcmp(a, "--input") == 0)
            input = argv[++i];
        else if (strcmp(a, "--output") == 0)
            output = argv[++i];
        else if (strcmp(a, "--labels") == 0)
            labels = argv[++i];
        else if (strcmp(a, "--scale") == 0) {
            char *end;
            scale = strtod(argv[++i], &end);
            if (*end || !isfinite(scale))
                return usage_error("run", "--scale: '%s' is not a number", argv[i]);
        } else
            return usage_error("run", "unknown option '%s'", a);
    }
    if (!input)
        return usage_error("run", "%s", "a model file needs --input FILE");
    struct args margs = {.file = model_path};
    void *handle = NULL;
    nncc_model *m = load_model(&margs, &handle);
    if (!m)
        return EXIT_MODEL;
    int rc = EXIT_USAGE;
    bool idx;
    struct nncc_array *x = load_data(input, &idx), *y = NULL, *p = NULL;
    if (!x) {
        fprintf(stderr, "nncc run: %s\n", nncc_last_error());
        goto done;
    }
    float s = (float)(isnan(scale) ? (idx ? 1 / 255.0 : 1.0) : scale);
    for (int64_t i = 0; s != 1 && i < nncc_array_size(x); i++)
        x->data[i] *= s;
    /* rows of the model input's size take its shape */
    struct nncc_shape in = nncc_tensor_shape(nncc_model_input(m, 0));
    int64_t per = 1, rows = x->shape.rank ? x->shape.dim[0] : 0;
    for (int d = 1; d < in.rank; d++)
        per *= in.dim[d];
    if (rows > 0 && nncc_array_size(x) == rows * per) {
        in.dim[0] = rows;
        x->shape = in;
    }
    p = nncc_predict(m, x);
    if (!p) {
        fprintf(stderr, "nncc run: %s\n", nncc_last_error());
        rc = EXIT_MODEL;
        goto done;
    }
    int64_t outs = nncc_array_size(p) / (p->shape.dim[0] ? p->shape.dim[0] : 1);
    if (output) {
        if (nncc_save_npy(output, p) != NNCC_OK) {
            fprintf(stderr, "nncc run: %s\n", nncc_last_error());
            goto done;
        }
    } else if (!labels) {
        for (int64_t r = 0; r < p->shape.dim[0]; r++)
            printf("%lld\n", (long long)argmax(p->data + r * outs, outs));
    }
    if (labels) {
        bool lidx;
        if (!(y = load_data(labels, &lidx))) {
            fprintf(stderr, "nncc run: %s\n", nncc_last_error());
            goto done;
        }
        int64_t n = p->shape.dim[0], lw = y->shape.rank ? nncc_array_size(y) / y->shape.dim[0] : 0;
        if (!y->shape.rank || y->shape.dim[0] != n || (lw != 1 && lw != outs)) {
            fprintf(stderr, "nncc run: %s has %lld rows of %lld labels; the model made %lld rows "
                    "of %lld outputs\n", labels, (long long)(y->shape.rank ? y->shape.dim[0] : 0),
                    (long long)lw, (long long)n, (long long)outs);
            goto done;
        }
        int64_t right = 0;
        for (int64_t r = 0; r < n; r++) {
            int64_t want = lw == 1 ? (int64_t)y->data[r] : argmax(y->data + r * lw, lw);
            right += argmax(p->data + r * outs, outs) == want;
        }
        printf("accuracy: %.4f (%lld of %lld)\n", n ? (double)right / (double)n : 0.0,
               (long long)right, (long long)n);
    }
    rc = 0;
done:
    nncc_array_free(x);
    nncc_array_free(y);
    nncc_array_free(p);
    nncc_model_free(m);
    return rc;
}
