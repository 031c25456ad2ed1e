/*
 * fuzz_idx.c — libFuzzer harness for the IDX reader (runtime/io/data_idx.c,
 * which parses with codegen/aot/formats.c).
 *
 * Each input is written to a temporary file and loaded with
 * nncc_load_idx_file() as it is and as a gzip-compressed copy (zlib gzwrite),
 * then with nncc_load_idx_() taking that file as both images and labels
 * (one_hot 10).  When the input starts with a complete IDX file, it is also
 * split there: the first file as images, the rest as labels (a seed that is
 * an images file followed by a labels file reaches the pairing code).
 *
 * Invariants, for any input: a loaded array has size == product of its shape
 * > 0; a plain file loads only when its header announces exactly its size,
 * and then with the header's shape; the gzip copy loads exactly like the
 * plain file; x and y of a pair agree in samples, one-hot rows hold one 1,
 * and x equals the images file loaded alone; on failure everything returned
 * is NULL and nncc_last_error() is non-empty and names the file.
 */
#include <zlib.h>

#include "fuzz_util.h"

static int raw_file = -1, gz_file, img_file, lab_file;

static int elem_size(int type)
{
    switch (type) {
    case 0x08: case 0x09: return 1;
    case 0x0B: return 2;
    case 0x0C: case 0x0D: return 4;
    case 0x0E: return 8;
    }
    return 0;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The length of the plain IDX file at the start of data (header + elements)
 * when its header is well-formed and it fits in size; 0 otherwise. */
static size_t idx_length(const uint8_t *data, size_t size)
{
    if (size < 4 || data[0] || data[1]) return 0;
    int elem = elem_size(data[2]), ndims = data[3];
    if (!elem || ndims < 1 || ndims > NNCC_MAX_RANK || size < 4 + 4 * (size_t)ndims) return 0;
    size_t count = 1;
    for (int i = 0; i < ndims; i++) {
        uint32_t d = be32(data + 4 + 4 * i);
        if (d == 0 || d > size || count > size / d) return 0;
        count *= d;
    }
    size_t len = 4 + 4 * (size_t)ndims + count * (size_t)elem;
    return len <= size ? len : 0;
}

/* A successful load of the plain file: its header announces exactly this
 * shape and exactly the file's size. */
static void check_plain(const struct nncc_array *a, const uint8_t *data, size_t size)
{
    size_t len = idx_length(data, size);
    if (len != size)
        fuzz_die("nncc_load_idx_file accepted a plain file of %zu bytes whose header "
                 "announces %zu bytes",
                 size, len);
    if (a->shape.rank != data[3]) fuzz_die("rank %d, the header says %d", a->shape.rank, data[3]);
    for (int i = 0; i < a->shape.rank; i++)
        if (a->shape.dim[i] != be32(data + 4 + 4 * i))
            fuzz_die("dimension %d is %lld, the header says %u", i, (long long)a->shape.dim[i],
                     be32(data + 4 + 4 * i));
}

static void write_gz(const uint8_t *data, size_t size)
{
    gzFile g = gzopen(fuzz_path(gz_file), "wb");
    if (!g) fuzz_die("gzopen(%s) failed", fuzz_path(gz_file));
    if (size && gzwrite(g, data, (unsigned)size) != (int)size) fuzz_die("gzwrite failed");
    if (gzclose(g) != Z_OK) fuzz_die("gzclose failed");
}

static struct nncc_array *load_file(const char *path)
{
    nncc_clear_error();
    struct nncc_array *a = nncc_load_idx_file(path);
    if (a) fuzz_check_array("nncc_load_idx_file", a);
    else fuzz_check_error("nncc_load_idx_file", path, NULL);
    return a;
}

/* Loads images + labels with o and checks the pair; compares x with the
 * images file loaded alone when o keeps every sample unscaled. */
static void load_pair(const char *images, const char *labels, struct nncc_idx_opts o)
{
    nncc_clear_error();
    struct nncc_data d = nncc_load_idx_(images, labels, o);
    if (!d.x || !d.y) {
        if (d.x || d.y) fuzz_die("nncc_load_idx_ failed but returned x=%p y=%p", (void *)d.x,
                                 (void *)d.y);
        fuzz_check_error("nncc_load_idx_", images, labels);
        return;
    }
    fuzz_check_array("nncc_load_idx_ x", d.x);
    fuzz_check_array("nncc_load_idx_ y", d.y);
    int64_t n = d.x->shape.dim[0];
    if (d.x->shape.rank != 4 || d.x->shape.dim[3] != 1)
        fuzz_die("nncc_load_idx_: x has rank %d (expected (n, rows, cols, 1))", d.x->shape.rank);
    if (o.limit > 0 && n > o.limit)
        fuzz_die("nncc_load_idx_: %lld samples despite limit %lld", (long long)n,
                 (long long)o.limit);
    if (d.y->shape.rank != (o.one_hot ? 2 : 1) || d.y->shape.dim[0] != n ||
        (o.one_hot && d.y->shape.dim[1] != o.one_hot))
        fuzz_die("nncc_load_idx_: y's shape does not match %lld samples and one_hot %d",
                 (long long)n, o.one_hot);
    if (o.one_hot)
        for (int64_t i = 0; i < n; i++) {
            int ones = 0;
            for (int c = 0; c < o.one_hot; c++) {
                float v = d.y->data[i * o.one_hot + c];
                if (v != 0.0f && v != 1.0f) fuzz_die("one-hot row %lld holds %g", (long long)i, v);
                ones += v == 1.0f;
            }
            if (ones != 1) fuzz_die("one-hot row %lld has %d ones", (long long)i, ones);
        }
    if (o.limit == 0 && (o.scale == 0 || o.scale == 1)) {
        struct nncc_array *alone = nncc_load_idx_file(images);
        if (!alone) fuzz_die("the images file of a loaded pair fails alone: %s", nncc_last_error());
        if (nncc_array_size(alone) != nncc_array_size(d.x) ||
            memcmp(alone->data, d.x->data, (size_t)nncc_array_size(alone) * sizeof(float)))
            fuzz_die("x differs from the images file loaded alone");
        nncc_array_free(alone);
    }
    nncc_data_free(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (raw_file < 0) {
        raw_file = fuzz_temp_file("idx");
        gz_file = fuzz_temp_file("idx-gz");
        img_file = fuzz_temp_file("idx-images");
        lab_file = fuzz_temp_file("idx-labels");
    }
    const char *raw = fuzz_path(raw_file), *gz = fuzz_path(gz_file);
    fuzz_write(raw_file, data, size);
    write_gz(data, size);

    struct nncc_array *a = load_file(raw);
    /* Not starting with gzip's magic 1f 8b, the file is read as plain IDX. */
    bool plain = !(size >= 2 && data[0] == 0x1f && data[1] == 0x8b);
    if (a && plain) check_plain(a, data, size);
    struct nncc_array *b = load_file(gz);
    if (plain) {
        if (!a != !b)
            fuzz_die("the plain file %s but its gzip copy %s", a ? "loads" : "fails",
                     b ? "loads" : "fails");
        if (a && !fuzz_same_array(a, b)) fuzz_die("the gzip copy loads different values");
    }
    nncc_array_free(a);
    nncc_array_free(b);

    load_pair(raw, raw, (struct nncc_idx_opts){.one_hot = 10});

    size_t k = idx_length(data, size);
    if (k > 0) {
        fuzz_write(img_file, data, k);
        fuzz_write(lab_file, data + k, size - k);
        load_pair(fuzz_path(img_file), fuzz_path(lab_file), (struct nncc_idx_opts){.one_hot = 10});
        load_pair(fuzz_path(img_file), fuzz_path(lab_file),
                  (struct nncc_idx_opts){.limit = 1, .scale = 1 / 255.f});
    }
    return 0;
}
