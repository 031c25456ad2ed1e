/*
 * fuzz_keras.c — libFuzzer harness for Keras model files: the public
 * nncc_load() on .h5 and .keras files, and directly the readers under it,
 * runtime/io/keras_h5.c (HDF5 over libhdf5) and runtime/io/keras_zip.c
 * (zip over libzip).
 *
 * The first byte chooses the form: even, the rest of the input is an .h5
 * file; odd, a .keras archive.  The rest is written to a temporary file of
 * that suffix and given to nncc_load(); then to the readers themselves:
 * kh5_open_image() on the bytes (and kh5_open() on the file), or
 * kzip_read() of the archive's usual members, whose model.weights.h5 is
 * then opened with kh5_open_image().  Each HDF5 file is walked: the
 * children of every group to depth 4, the attributes Keras uses as a string
 * and as a list, every dataset's shape and, when small, its values.
 * Invariants, for any input: every failure sets an error naming the file
 * (or its label); a loaded model has a summary.
 *
 * libhdf5 1.10.8 itself crashes, hangs or allocates gigabytes on such
 * inputs; runtime/io/keras_h5_tree.c reads every file in a child process so
 * that these end as clean errors (tests/fuzz/regress/keras/ keeps them).
 * The child's time limit is set to 2 s here (NNCC_KH5_SECONDS), so that an
 * input's three opens stay under scripts/fuzz.sh's -timeout=10.  What the
 * child executes is invisible to the fuzzer's coverage (another process):
 * the fuzzer is guided by the parent's side, the loader and the stream
 * parser.
 */
#include "fuzz_util.h"
#include <stdlib.h>
#include <sys/stat.h>

#include "runtime/io/keras_h5.h"
#include "runtime/io/keras_zip.h"

static char dir[512], h5_path[600], keras_path[600];

static void cleanup(void)
{
    unlink(h5_path);
    unlink(keras_path);
    rmdir(dir);
}

/* Writes data to path, replacing it. */
static void put(const char *path, const uint8_t *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0)
        fuzz_die("cannot write %s", path);
}

static void check_error(const char *call, const char *label)
{
    fuzz_check_error(call, label, NULL);
}

static const char *const ATTRS[] = {"model_config", "training_config", "keras_version",
                                    "backend",      "layer_names",     "weight_names"};

static void walk(struct kh5 *f, const char *path, int depth)
{
    const char *label = kh5_label(f);
    for (size_t i = 0; i < sizeof ATTRS / sizeof ATTRS[0]; i++) {
        if (!kh5_has_attr(f, path, ATTRS[i])) continue;
        nncc_clear_error();
        char *s = kh5_attr_string(f, path, ATTRS[i]);
        if (!s) check_error("kh5_attr_string", label);
        free(s);
        char **l = NULL;
        int n = kh5_attr_strings(f, path, ATTRS[i], &l);
        if (n < 0) check_error("kh5_attr_strings", label);
        else if (!l) fuzz_die("kh5_attr_strings returned %d and no array", n);
        kh5_strings_free(l, n);
    }
    if (kh5_is_dataset(f, path)) {
        struct nncc_shape shape;
        nncc_clear_error();
        if (kh5_shape(f, path, &shape) != NNCC_OK) {
            check_error("kh5_shape", label);
            return;
        }
        int64_t n = 1;
        for (int i = 0; i < shape.rank; i++) n *= shape.dim[i];
        if (n >= 0 && n <= (1 << 16)) {
            float *v = malloc((size_t)(n ? n : 1) * sizeof *v);
            if (kh5_read_f32(f, path, v, n) != NNCC_OK) check_error("kh5_read_f32", label);
            free(v);
        }
        int64_t iv;
        double dv;
        if (kh5_read_i64(f, path, &iv) != NNCC_OK) check_error("kh5_read_i64", label);
        if (kh5_read_f64(f, path, &dv) != NNCC_OK) check_error("kh5_read_f64", label);
        return;
    }
    if (depth >= 4 || !kh5_is_group(f, path)) return;
    char **c = NULL;
    nncc_clear_error();
    int n = kh5_children(f, path, &c);
    if (n < 0) {
        check_error("kh5_children", label);
        return;
    }
    for (int i = 0; i < n && i < 16; i++) {
        char child[4200];
        snprintf(child, sizeof child, "%s/%s", path, c[i]);
        walk(f, child, depth + 1);
    }
    kh5_strings_free(c, n);
}

static void walk_image(const void *data, size_t size, const char *label)
{
    nncc_clear_error();
    struct kh5 *f = kh5_open_image(data, size, label);
    if (!f) {
        check_error("kh5_open_image", label);
        return;
    }
    walk(f, "", 0);
    kh5_close(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!dir[0]) {
        setenv("NNCC_KH5_SECONDS", "2", 0);
        snprintf(dir, sizeof dir, "%s/nncc-fuzz-keras-XXXXXX", fuzz_tmpdir());
        if (!mkdtemp(dir)) fuzz_die("mkdtemp(%s): %s", dir, strerror(errno));
        snprintf(h5_path, sizeof h5_path, "%s/model.h5", dir);
        snprintf(keras_path, sizeof keras_path, "%s/model.keras", dir);
        atexit(cleanup);
    }
    if (size == 0) return 0;
    bool h5 = data[0] % 2 == 0;
    data++;
    size--;
    const char *path = h5 ? h5_path : keras_path;
    put(path, data, size);

    nncc_clear_error();
    nncc_model *m = nncc_load(path);
    if (!m) {
        check_error("nncc_load", path);
    } else {
        FILE *sink = fopen("/dev/null", "w");
        if (!sink || nncc_summary(m, sink) != NNCC_OK)
            fuzz_die("a loaded model has no summary: %s", nncc_last_error());
        fclose(sink);
        nncc_model_free(m);
    }

    if (h5) {
        walk_image(data, size, "fuzz.h5");
        nncc_clear_error();
        struct kh5 *f = kh5_open(path, NULL);
        if (!f) check_error("kh5_open", path);
        else kh5_close(f);
        return 0;
    }
    struct kzip_member mem[] = {
        {.name = "config.json", .optional = true},
        {.name = "metadata.json", .optional = true},
        {.name = "model.weights.h5", .optional = true},
    };
    nncc_clear_error();
    if (kzip_read(path, mem, 3) != NNCC_OK) {
        check_error("kzip_read", path);
        for (int i = 0; i < 3; i++)
            if (mem[i].data) fuzz_die("kzip_read failed but left member %d allocated", i);
        return 0;
    }
    for (int i = 0; i < 3; i++)
        if (mem[i].data && ((char *)mem[i].data)[mem[i].size] != 0)
            fuzz_die("member %s is not NUL-terminated", mem[i].name);
    if (mem[2].data) walk_image(mem[2].data, mem[2].size, "ARCHIVE:model.weights.h5");
    kzip_members_free(mem, 3);
    return 0;
}
