/*
 * aot_driver.c — a user of `nncc compile --emit c|obj|lib` artifacts, built
 * by tests/codegen/test_compile.c against a generated NAME.h and NAME.c / NAME.o /
 * libNAME.a with -DAOT_HEADER="NAME.h" -DAOT_NAME=NAME (and -DAOT_TRAIN
 * for models compiled with --train).  It uses only the documented ABI:
 *
 *   driver predict IN.raw N OUT.raw [DATA.bin]
 *       runs NAME_predict on N rows of raw float32, writes the outputs raw;
 *       with DATA.bin (--external-weights) checks it and passes it in.
 *   driver train X.raw Y.raw N STEPS OUT_WEIGHTS.raw OUT_LOGS.raw
 *       NAME_train_init from the embedded data, then STEPS optimizer steps
 *       on the same batch at NAME_LEARNING_RATE; writes the weights region
 *       and every step's logs.
 *
 * Exit status 0, or 1 with a message.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include AOT_HEADER

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define F(x) CAT(AOT_NAME, x)

static void *read_file(const char *path, size_t want)
{
    FILE *f = fopen(path, "rb");
    char *buf = malloc(want + 1);
    size_t got = f && buf ? fread(buf, 1, want + 1, f) : 0;
    if (f)
        fclose(f);
    if (got != want) {
        fprintf(stderr, "driver: %s: %zu bytes, expected %zu\n", path, got, want);
        free(buf);
        return NULL;
    }
    return buf;
}

static int write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(data, 1, len, f) == len;
    if (f && fclose(f))
        ok = 0;
    return ok ? 0 : 1;
}

/* Workspace from malloc: aligned_alloc needs a multiple of the alignment. */
static void *workspace(size_t bytes)
{
    size_t a = F(_ALIGN);
    return aligned_alloc(a, (bytes + a - 1) / a * a + a);
}

static int predict(int argc, char **argv)
{
    int n = atoi(argv[3]);
    float *x = read_file(argv[2], (size_t)n * F(_INPUT_SIZE) * sizeof(float));
    float *y = malloc((size_t)n * F(_OUTPUT_SIZE) * sizeof(float));
    void *ws = workspace(F(_WORKSPACE_SIZE)(n));
    const float *w = NULL;
    void *bin = NULL;
    if (argc > 5) {
        bin = read_file(argv[5], F(_DATA_SIZE));
        if (!bin || F(_data_check)(bin, F(_DATA_SIZE)) != F(_OK)) {
            fprintf(stderr, "driver: %s is not the model's data\n", argv[5]);
            return 1;
        }
        w = bin;
    }
    if (!x || !y || !ws)
        return 1;
    /* The documented errors first. */
    if (F(_predict)(w, x, y, 0, ws) != F(_ERR_ARG) || F(_predict)(w, NULL, y, n, ws) != F(_ERR_ARG)) {
        fprintf(stderr, "driver: bad arguments were not refused\n");
        return 1;
    }
    if (!F(_EMBEDDED_WEIGHTS) && F(_predict)(NULL, x, y, n, ws) != F(_ERR_WEIGHTS)) {
        fprintf(stderr, "driver: missing weights were not refused\n");
        return 1;
    }
    int rc = F(_predict)(w, x, y, n, ws);
    if (rc != F(_OK)) {
        fprintf(stderr, "driver: predict returned %d\n", rc);
        return 1;
    }
    rc = write_file(argv[4], y, (size_t)n * F(_OUTPUT_SIZE) * sizeof(float));
    free(x);
    free(y);
    free(ws);
    free(bin);
    return rc;
}

#ifdef AOT_TRAIN
static int train(char **argv)
{
    int n = atoi(argv[4]), steps = atoi(argv[5]);
    float *x = read_file(argv[2], (size_t)n * F(_INPUT_SIZE) * sizeof(float));
    float *y = read_file(argv[3], (size_t)n * F(_TARGET_SIZE) * sizeof(float));
    float *w = workspace(F(_WEIGHTS_SIZE));
    float *s = workspace(F(_STATE_SIZE));
    void *ws = workspace(F(_TRAIN_WORKSPACE_SIZE)(n));
    float *logs = calloc((size_t)steps * F(_NUM_LOGS), sizeof(float));
    if (!x || !y || !w || !s || !ws || !logs || F(_train_init)(NULL, w, s) != F(_OK))
        return 1;
    for (int k = 0; k < steps; k++)
        if (F(_train_step)(w, s, x, y, n, F(_LEARNING_RATE), F(_ITERATIONS) + k + 1, 42, logs + k * F(_NUM_LOGS),
                           ws) != F(_OK))
            return 1;
    int rc = write_file(argv[6], w, F(_WEIGHTS_SIZE)) ||
             write_file(argv[7], logs, (size_t)steps * F(_NUM_LOGS) * sizeof(float));
    free(x), free(y), free(w), free(s), free(ws), free(logs);
    return rc;
}
#endif

int main(int argc, char **argv)
{
    if (argc >= 5 && strcmp(argv[1], "predict") == 0)
        return predict(argc, argv);
#ifdef AOT_TRAIN
    if (argc == 8 && strcmp(argv[1], "train") == 0)
        return train(argv);
#endif
    fprintf(stderr, "driver: bad arguments\n");
    return 1;
}
