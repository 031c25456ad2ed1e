/*
 * safetensors.c — nncc_save_weights / nncc_load_weights: a model's weights
 * in the safetensors format (https://github.com/huggingface/safetensors).
 *
 * Layout: an unsigned 64-bit little-endian header length N; N bytes of JSON
 *     {"__metadata__": {"format": "nncc-weights", "nncc_version": …, "model": …},
 *      "dense/kernel": {"dtype": "F32", "shape": [4, 3], "data_offsets": [0, 48]}, …}
 * padded with spaces so the data starts on an 8-byte boundary; then the
 * tensors' raw little-endian float32 bytes, each at [begin, end) of the data
 * section.  One tensor per weight of the model's layers, in model order,
 * named by nncc_layer_weight_name() and laid out as Keras lays it out, so
 * `safetensors.numpy.load_file()` reads the file as Keras' get_weights().
 *
 * Saving is atomic: a fresh temporary file next to the target, written,
 * flushed and fsync()ed, then rename()d over the target (and the folder
 * fsync()ed), so a crash never leaves a half-written file under the name.
 *
 * Loading trusts nothing in the file: the header length is bounded (100 MB,
 * as the reference implementation) and must fit the file; the header must be
 * a JSON object (jansson, duplicate keys rejected); every tensor must be F32
 * with a shape of at most NNCC_MAX_RANK non-negative dimensions, and its
 * offsets must hold exactly its bytes; sorted by offset the tensors must
 * tile the data section with no gap, no overlap and nothing after it (the
 * reference implementation's rule).  Tensors are matched to the model's
 * weights by name: a missing or extra tensor or a wrong shape is an error
 * naming the tensor and the file.  All values are read into a staging buffer
 * first, so a failed load leaves the model's weights as they were.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "train.h"

bool model_check_ready(const nncc_model *m);

#define ST_MAX_HEADER (100u * 1024u * 1024u) /* as safetensors' MAX_HEADER_SIZE */
#define ST_FORMAT "nncc-weights"

/* ---- Little-endian helpers (the host may be either) -------------------- */

static bool host_is_little_endian(void)
{
    const uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

static void put_u64le(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_u64le(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* Reverses the bytes of each float in place (a big-endian host). */
static void swap_floats(float *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char b[4], r[4];
        memcpy(b, &v[i], 4);
        r[0] = b[3], r[1] = b[2], r[2] = b[1], r[3] = b[0];
        memcpy(&v[i], r, 4);
    }
}

/* ---- The model's weights ----------------------------------------------- */

/* Runs the statement after it with w = each weight of the model's layers,
 * in model order (Keras' model.weights order). */
#define FOR_WEIGHTS(m, w)                                                \
    for (int li_ = 0; li_ < (m)->n_layers; li_++)                        \
        for (int wi_ = 0; wi_ < (m)->layers[li_]->n_weights; wi_++)      \
            for (nncc_tensor *w = (m)->layers[li_]->weights[wi_]; w; w = NULL)

static int count_weights(const nncc_model *m)
{
    int n = 0;
    FOR_WEIGHTS(m, w) n++;
    return n;
}

/* ---- save -------------------------------------------------------------- */

/* The header JSON (malloc'd, padded with spaces so 8 + length is a multiple
 * of 8), or NULL with the error set. */
static char *make_header(const nncc_model *m, const char *path, size_t *len)
{
    json_t *root = json_object();
    json_t *meta = json_object();
    char *text = NULL;
    if (!root || !meta)
        goto nomem;
    if (json_object_set_new(meta, "format", json_string(ST_FORMAT)) ||
        json_object_set_new(meta, "nncc_version", json_string(NNCC_VERSION_STRING)) ||
        json_object_set_new(meta, "model", json_string(m->name ? m->name : "")))
        goto nomem;
    if (json_object_set(root, "__metadata__", meta))
        goto nomem;
    uint64_t offset = 0;
    FOR_WEIGHTS(m, w) {
        if (json_object_get(root, w->name)) {
            nncc_fail(NNCC_ERR_GRAPH, "save_weights '%s': two weights are named \"%s\"", path,
                      w->name);
            goto fail;
        }
        json_t *t = json_object(), *shape = json_array(), *offs = json_array();
        if (!t || !shape || !offs) {
            json_decref(t);
            json_decref(shape);
            json_decref(offs);
            goto nomem;
        }
        uint64_t bytes = (uint64_t)ir_shape_numel(w->shape, 0) * sizeof(float);
        bool bad = json_object_set_new(t, "dtype", json_string("F32")) != 0;
        for (int d = 0; d < w->shape.rank; d++)
            bad |= json_array_append_new(shape, json_integer(w->shape.dim[d])) != 0;
        bad |= json_array_append_new(offs, json_integer((json_int_t)offset)) != 0;
        bad |= json_array_append_new(offs, json_integer((json_int_t)(offset + bytes))) != 0;
        bad |= json_object_set_new(t, "shape", shape) != 0;
        bad |= json_object_set_new(t, "data_offsets", offs) != 0;
        bad |= json_object_set_new(root, w->name, t) != 0;
        if (bad)
            goto nomem;
        offset += bytes;
    }
    text = json_dumps(root, JSON_COMPACT);
    if (!text)
        goto nomem;
    size_t n = strlen(text), padded = n + (8 - (8 + n) % 8) % 8;
    char *out = realloc(text, padded + 1);
    if (!out)
        goto nomem;
    memset(out + n, ' ', padded - n);
    out[padded] = '\0';
    json_decref(meta);
    json_decref(root);
    *len = padded;
    return out;
nomem:
    nncc_fail(NNCC_ERR_NOMEM, "save_weights '%s': out of memory", path);
fail:
    free(text);
    json_decref(meta);
    json_decref(root);
    return NULL;
}

/* Writes one tensor's values as little-endian float32. */
static bool write_floats(FILE *f, const float *v, int64_t n)
{
    if (host_is_little_endian())
        return fwrite(v, sizeof *v, (size_t)n, f) == (size_t)n;
    float buf[1024];
    for (int64_t i = 0; i < n; i += 1024) {
        size_t k = (size_t)(n - i < 1024 ? n - i : 1024);
        memcpy(buf, v + i, k * sizeof *buf);
        swap_floats(buf, k);
        if (fwrite(buf, sizeof *buf, k, f) != k)
            return false;
    }
    return true;
}

/* Opens a new temporary file next to `path` (O_EXCL, so never someone
 * else's); its name goes to tmp.  -1 with errno set on failure. */
static int open_temp(const char *path, char *tmp, size_t size)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)(uintptr_t)tmp;
    for (int attempt = 0; attempt < 100; attempt++) {
        x = x * 6364136223846793005u + 1442695040888963407u;
        int k = snprintf(tmp, size, "%s.tmp-%ld-%08lx", path, (long)getpid(),
                         (unsigned long)(x >> 32));
        if (k < 0 || (size_t)k >= size) {
            errno = ENAMETOOLONG;
            return -1;
        }
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0666);
        if (fd >= 0 || errno != EEXIST)
            return fd;
    }
    return -1;
}

/* fsync()s the folder holding path, so the rename itself is durable (best
 * effort: some file systems refuse to sync folders). */
static void sync_parent(const char *path)
{
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else if ((size_t)(slash - path) < sizeof dir)
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    else
        return;
    int fd = open(dir, O_RDONLY);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

enum nncc_status nncc_save_weights(const nncc_model *m, const char *path)
{
    if (!m || !path || !*path)
        return nncc_fail(NNCC_ERR_ARG, "save_weights: %s is NULL or empty",
                         !m ? "the model" : "the path");
    if (!model_check_ready(m))
        return nncc_last_status();
    size_t hlen;
    char *header = make_header(m, path, &hlen);
    if (!header)
        return nncc_last_status();
    size_t plen = strlen(path) + 64;
    char *tmp = malloc(plen);
    if (!tmp) {
        free(header);
        return nncc_fail(NNCC_ERR_NOMEM, "save_weights '%s': out of memory", path);
    }
    int fd = open_temp(path, tmp, plen);
    if (fd < 0) {
        int e = errno;
        free(header);
        free(tmp);
        return nncc_fail(NNCC_ERR_IO, "save_weights: cannot create a temporary file next to '%s': %s",
                         path, strerror(e));
    }
    FILE *f = fdopen(fd, "wb");
    if (!f) {
        int e = errno;
        close(fd);
        unlink(tmp);
        free(header);
        free(tmp);
        return nncc_fail(NNCC_ERR_IO, "save_weights '%s': %s", path, strerror(e));
    }
    unsigned char lenbuf[8];
    put_u64le(lenbuf, (uint64_t)hlen);
    bool ok = fwrite(lenbuf, 1, 8, f) == 8 && fwrite(header, 1, hlen, f) == hlen;
    FOR_WEIGHTS(m, w) {
        if (ok)
            ok = write_floats(f, w->data, ir_shape_numel(w->shape, 0));
    }
    int e = 0;
    if (!ok || fflush(f) != 0 || fsync(fileno(f)) != 0)
        e = errno ? errno : EIO;
    if (fclose(f) != 0 && !e)
        e = errno ? errno : EIO;
    if (!e && rename(tmp, path) != 0)
        e = errno;
    free(header);
    if (e) {
        unlink(tmp);
        free(tmp);
        return nncc_fail(NNCC_ERR_IO, "save_weights: cannot write '%s': %s", path, strerror(e));
    }
    free(tmp);
    sync_parent(path);
    return NNCC_OK;
}

/* ---- load -------------------------------------------------------------- */

/* One tensor of the file, as its header describes it. */
struct st_entry {
    const char *name; /* the header's key (valid while the JSON lives) */
    struct nncc_shape shape;
    uint64_t begin, end;
};

static int by_offset(const void *a, const void *b)
{
    const struct st_entry *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

static char *shape_str(struct nncc_shape s, char *buf, size_t size)
{
    return ir_dims_str(s, buf, size);
}

/* Reads one entry of the header; NNCC_OK or the error (naming file and key). */
static enum nncc_status parse_entry(const char *path, const char *key, json_t *v,
                                    uint64_t data_len, struct st_entry *e)
{
    if (!json_is_object(v))
        return nncc_fail(NNCC_ERR_FORMAT, "load_weights '%s': tensor \"%s\" is not a JSON object",
                         path, key);
    json_t *dtype = json_object_get(v, "dtype"), *shape = json_object_get(v, "shape");
    json_t *offs = json_object_get(v, "data_offsets");
    if (!json_is_string(dtype) || !json_is_array(shape) || !json_is_array(offs))
        return nncc_fail(NNCC_ERR_FORMAT,
                         "load_weights '%s': tensor \"%s\" needs \"dtype\", \"shape\" and "
                         "\"data_offsets\"",
                         path, key);
    if (strcmp(json_string_value(dtype), "F32") != 0)
        return nncc_fail(NNCC_ERR_FORMAT,
                         "load_weights '%s': tensor \"%s\" has dtype %.20s; nncc reads F32 only",
                         path, key, json_string_value(dtype));
    size_t rank = json_array_size(shape);
    if (rank > NNCC_MAX_RANK)
        return nncc_fail(NNCC_ERR_FORMAT, "load_weights '%s': tensor \"%s\" has rank %zu (at most %d)",
                         path, key, rank, NNCC_MAX_RANK);
    e->name = key;
    e->shape.rank = (int)rank;
    uint64_t numel = 1;
    for (size_t d = 0; d < rank; d++) {
        json_t *x = json_array_get(shape, d);
        if (!json_is_integer(x) || json_integer_value(x) < 0)
            return nncc_fail(NNCC_ERR_FORMAT,
                             "load_weights '%s': tensor \"%s\" has a bad shape (dimension %zu is "
                             "not a non-negative integer)",
                             path, key, d);
        uint64_t dim = (uint64_t)json_integer_value(x);
        if (dim != 0 && numel > (UINT64_MAX / 8) / dim)
            return nncc_fail(NNCC_ERR_FORMAT, "load_weights '%s': tensor \"%s\" is impossibly large",
                             path, key);
        numel *= dim;
        e->shape.dim[d] = (int64_t)dim;
    }
    json_t *b = json_array_get(offs, 0), *end = json_array_get(offs, 1);
    if (json_array_size(offs) != 2 || !json_is_integer(b) || !json_is_integer(end) ||
        json_integer_value(b) < 0 || json_integer_value(end) < json_integer_value(b))
        return nncc_fail(NNCC_ERR_FORMAT,
                         "load_weights '%s': tensor \"%s\" has bad data_offsets (two integers "
                         "0 <= begin <= end expected)",
                         path, key);
    e->begin = (uint64_t)json_integer_value(b);
    e->end = (uint64_t)json_integer_value(end);
    char s[160];
    if (e->end - e->begin != numel * sizeof(float))
        return nncc_fail(NNCC_ERR_FORMAT,
                         "load_weights '%s': tensor \"%s\" of shape %s needs %llu bytes but its "
                         "data_offsets [%llu, %llu] hold %llu",
                         path, key, shape_str(e->shape, s, sizeof s),
                         (unsigned long long)(numel * sizeof(float)), (unsigned long long)e->begin,
                         (unsigned long long)e->end, (unsigned long long)(e->end - e->begin));
    if (e->end > data_len)
        return nncc_fail(NNCC_ERR_FORMAT,
                         "load_weights '%s': tensor \"%s\" ends at byte %llu of the data, but "
                         "the file holds only %llu bytes of data (truncated?)",
                         path, key, (unsigned long long)e->end, (unsigned long long)data_len);
    return NNCC_OK;
}

/* Checks the metadata, if any: an object of strings (the format's rule). */
static enum nncc_status check_metadata(const char *path, json_t *meta)
{
    if (!json_is_object(meta))
        return nncc_fail(NNCC_ERR_FORMAT, "load_weights '%s': \"__metadata__\" is not an object",
                         path);
    const char *k;
    json_t *v;
    json_object_foreach(meta, k, v) {
        if (!json_is_string(v))
            return nncc_fail(NNCC_ERR_FORMAT,
                             "load_weights '%s': \"__metadata__\" value \"%s\" is not a string",
                             path, k);
    }
    return NNCC_OK;
}

/* Reads exactly n bytes at offset off; false on a short read. */
static bool read_at(FILE *f, uint64_t off, void *dst, size_t n)
{
    if (n == 0)
        return true;
    if (off > (uint64_t)INT64_MAX || fseeko(f, (off_t)off, SEEK_SET) != 0)
        return false;
    return fread(dst, 1, n, f) == n;
}

/* The header (NUL-terminated) and the data section's length, or NULL with
 * the error set. */
static char *read_header(FILE *f, const char *path, size_t *hlen, uint64_t *data_len)
{
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode))
        return NNCC_FAIL_NULL(NNCC_ERR_IO, "load_weights: '%s' is not a regular file", path);
    uint64_t size = (uint64_t)st.st_size;
    unsigned char lenbuf[8];
    if (size < 8 || !read_at(f, 0, lenbuf, 8))
        return NNCC_FAIL_NULL(NNCC_ERR_FORMAT,
                              "load_weights: '%s' is not a safetensors file (%llu bytes: too "
                              "short for the 8-byte header length)",
                              path, (unsigned long long)size);
    uint64_t n = get_u64le(lenbuf);
    if (n < 2 || n > ST_MAX_HEADER || n > size - 8)
        return NNCC_FAIL_NULL(NNCC_ERR_FORMAT,
                              "load_weights: '%s' is not a safetensors file (header length %llu "
                              "does not fit a file of %llu bytes%s)",
                              path, (unsigned long long)n, (unsigned long long)size,
                              n > ST_MAX_HEADER ? "; the limit is 100 MB" : "");
    char *h = malloc((size_t)n + 1);
    if (!h)
        return NNCC_FAIL_NULL(NNCC_ERR_NOMEM, "load_weights '%s': out of memory", path);
    if (!read_at(f, 8, h, (size_t)n)) {
        free(h);
        return NNCC_FAIL_NULL(NNCC_ERR_IO, "load_weights: cannot read the header of '%s'", path);
    }
    h[n] = '\0';
    if (h[0] != '{') {
        free(h);
        return NNCC_FAIL_NULL(NNCC_ERR_FORMAT,
                              "load_weights: '%s' is not a safetensors file (the header is not "
                              "a JSON object)",
                              path);
    }
    *hlen = (size_t)n;
    *data_len = size - 8 - n;
    return h;
}

enum nncc_status nncc_load_weights(nncc_model *m, const char *path)
{
    if (!m || !path || !*path)
        return nncc_fail(NNCC_ERR_ARG, "load_weights: %s is NULL or empty",
                         !m ? "the model" : "the path");
    if (!model_check_ready(m))
        return nncc_last_status();
    /* O_NONBLOCK: a FIFO under the name must not hang us; read_header then
     * insists on a regular file. */
    int fd = open(path, O_RDONLY | O_NONBLOCK);
    FILE *f = fd >= 0 ? fdopen(fd, "rb") : NULL;
    if (!f) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return nncc_fail(NNCC_ERR_IO, "load_weights: cannot open '%s': %s", path, strerror(e));
    }
    size_t hlen;
    uint64_t data_len;
    char *header = read_header(f, path, &hlen, &data_len);
    if (!header) {
        fclose(f);
        return nncc_last_status();
    }
    enum nncc_status st = NNCC_OK;
    json_error_t jerr;
    json_t *root = json_loadb(header, hlen, JSON_REJECT_DUPLICATES, &jerr);
    int n_weights = count_weights(m);
    size_t cap = json_is_object(root) ? json_object_size(root) : 0;
    struct st_entry *ents = malloc(sizeof *ents * (cap + 1));
    struct st_entry **match = calloc((size_t)n_weights + 1, sizeof *match);
    float *stage = NULL;
    size_t n_ents = 0;
    if (!root) {
        st = nncc_fail(NNCC_ERR_FORMAT,
                       "load_weights: '%s' has a malformed header: %s (line %d, column %d)", path,
                       jerr.text, jerr.line, jerr.column);
        goto done;
    }
    if (!json_is_object(root)) {
        st = nncc_fail(NNCC_ERR_FORMAT, "load_weights: '%s': the header is not a JSON object", path);
        goto done;
    }
    if (!ents || !match) {
        st = nncc_fail(NNCC_ERR_NOMEM, "load_weights '%s': out of memory", path);
        goto done;
    }
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (strcmp(key, "__metadata__") == 0) {
            if ((st = check_metadata(path, val)))
                goto done;
            continue;
        }
        if ((st = parse_entry(path, key, val, data_len, &ents[n_ents])))
            goto done;
        n_ents++;
    }
    /* Sorted by offset, the tensors must tile the data section exactly. */
    qsort(ents, n_ents, sizeof *ents, by_offset);
    uint64_t at = 0;
    for (size_t i = 0; i < n_ents; i++) {
        if (ents[i].begin != at) {
            st = nncc_fail(NNCC_ERR_FORMAT,
                           "load_weights '%s': tensor \"%s\" starts at byte %llu of the data, "
                           "but the previous tensor ends at %llu (%s)",
                           path, ents[i].name, (unsigned long long)ents[i].begin,
                           (unsigned long long)at, ents[i].begin < at ? "overlap" : "gap");
            goto done;
        }
        at = ents[i].end;
    }
    if (at != data_len) {
        st = nncc_fail(NNCC_ERR_FORMAT,
                       "load_weights '%s': the tensors hold %llu bytes but the data section has "
                       "%llu",
                       path, (unsigned long long)at, (unsigned long long)data_len);
        goto done;
    }
    /* Match by name, check shapes, find extras. */
    size_t total = 0;
    int wi = 0;
    FOR_WEIGHTS(m, w) {
        struct st_entry *e = NULL;
        for (size_t i = 0; i < n_ents && !e; i++)
            if (strcmp(ents[i].name, w->name) == 0)
                e = &ents[i];
        if (!e) {
            st = nncc_fail(NNCC_ERR_FORMAT,
                           "load_weights '%s': no tensor \"%s\" in the file (the model's weight "
                           "\"%s\" is missing)",
                           path, w->name, w->name);
            goto done;
        }
        if (!ir_shape_eq(e->shape, w->shape)) {
            char a[160], b[160];
            st = nncc_fail(NNCC_ERR_SHAPE,
                           "load_weights '%s': tensor \"%s\" has shape %s in the file but %s in "
                           "the model",
                           path, w->name, shape_str(e->shape, a, sizeof a),
                           shape_str(w->shape, b, sizeof b));
            goto done;
        }
        match[wi++] = e;
        total += (size_t)ir_shape_numel(w->shape, 0);
    }
    for (size_t i = 0; i < n_ents; i++) {
        bool used = false;
        for (int k = 0; k < wi && !used; k++)
            used = match[k] == &ents[i];
        if (!used) {
            st = nncc_fail(NNCC_ERR_FORMAT,
                           "load_weights '%s': tensor \"%s\" matches no weight of model \"%s\"",
                           path, ents[i].name, m->name);
            goto done;
        }
    }
    /* Stage every value, then commit: a failure leaves the model unchanged. */
    stage = malloc(sizeof *stage * (total + 1));
    if (!stage) {
        st = nncc_fail(NNCC_ERR_NOMEM, "load_weights '%s': out of memory", path);
        goto done;
    }
    size_t pos = 0;
    for (int k = 0; k < wi; k++) {
        size_t n = (size_t)((match[k]->end - match[k]->begin) / sizeof(float));
        if (!read_at(f, 8 + hlen + match[k]->begin, stage + pos, n * sizeof(float))) {
            st = nncc_fail(NNCC_ERR_IO, "load_weights: cannot read tensor \"%s\" of '%s'",
                           match[k]->name, path);
            goto done;
        }
        pos += n;
    }
    if (!host_is_little_endian())
        swap_floats(stage, total);
    pos = 0;
    FOR_WEIGHTS(m, w) {
        size_t n = (size_t)ir_shape_numel(w->shape, 0);
        memcpy(w->data, stage + pos, n * sizeof(float));
        pos += n;
    }
done:
    free(stage);
    free(match);
    free(ents);
    json_decref(root);
    free(header);
    fclose(f);
    return st;
}
