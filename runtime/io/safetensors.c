/*
 * safetensors.c — the safetensors container (https://github.com/huggingface/
 * safetensors) and nncc_save_weights / nncc_load_weights on top of it.
 *
 * Layout: an unsigned 64-bit little-endian header length N; N bytes of JSON
 *     {"__metadata__": {"format": "nncc-weights", "nncc_version": …, "model": …},
 *      "dense/kernel": {"dtype": "F32", "shape": [4, 3], "data_offsets": [0, 48]}, …}
 * padded with spaces so the data starts on an 8-byte boundary; then the
 * tensors' raw little-endian float32 bytes, each at [begin, end) of the data
 * section.  A weights file holds one tensor per weight of the model's
 * layers, in model order, named by nncc_layer_weight_name() and laid out as
 * Keras lays it out, so `safetensors.numpy.load_file()` reads the file as
 * Keras' get_weights().  Whole-model files (runtime/io/model_io.c) use the
 * same writer and reader (safetensors.h).
 *
 * Saving is atomic (runtime/io/atomic.c): a fresh temporary file beside the
 * target, written, flushed and fsync()ed, then rename()d over the target,
 * so a crash never leaves a half-written file under the name; the file
 * keeps an existing target's permissions and a symbolic link at the path is
 * written through to its target.
 *
 * Reading trusts nothing in the file: the header length is bounded (100 MB,
 * as the reference implementation) and must fit the file; the header must be
 * a JSON object (jansson, duplicate keys rejected); every tensor must be F32
 * with a shape of at most NNCC_MAX_RANK non-negative dimensions, and its
 * offsets must hold exactly its bytes; sorted by offset the tensors must
 * tile the data section with no gap, no overlap and nothing after it (the
 * reference implementation's rule).  load_weights matches tensors to the
 * model's weights by name: a missing or extra tensor or a wrong shape is an
 * error naming the tensor and the file (the optimizer slots of a whole-model
 * file are skipped).  All values are read into a staging buffer first, so a
 * failed load leaves the model's weights as they were.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "runtime/io/atomic.h"
#include "runtime/io/safetensors.h"
#include "ir/sha256.h"

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

/* ---- Writing ------------------------------------------------------------ */

/* Feeds n floats to the hash as little-endian bytes. */
static void hash_floats(struct nncc_sha256 *s, const float *v, int64_t n)
{
    if (host_is_little_endian()) {
        nncc_sha256_update(s, v, (size_t)n * sizeof *v);
        return;
    }
    float buf[1024];
    for (int64_t i = 0; i < n; i += 1024) {
        size_t k = (size_t)(n - i < 1024 ? n - i : 1024);
        memcpy(buf, v + i, k * sizeof *buf);
        swap_floats(buf, k);
        nncc_sha256_update(s, buf, k * sizeof *buf);
    }
}

/* The header JSON (malloc'd, padded with spaces so 8 + length is a multiple
 * of 8), or NULL with the error set. */
static char *make_header(const char *path, const char *who, const struct st_tensor *ts, int n,
                         json_t *meta, bool checksum, size_t *len)
{
    json_t *root = json_object();
    json_t *md = meta ? json_deep_copy(meta) : json_object();
    char *text = NULL;
    if (!root || !md)
        goto nomem;
    if (checksum) {
        struct nncc_sha256 s;
        unsigned char digest[NNCC_SHA256_SIZE];
        char hex[NNCC_SHA256_HEX_SIZE];
        nncc_sha256_init(&s);
        for (int i = 0; i < n; i++)
            hash_floats(&s, ts[i].data, ir_shape_numel(ts[i].shape, 0));
        nncc_sha256_final(&s, digest);
        nncc_sha256_hex(digest, hex);
        if (json_object_set_new(md, "checksum", json_string(hex)))
            goto nomem;
    }
    if (json_object_set(root, "__metadata__", md))
        goto nomem;
    uint64_t offset = 0;
    for (int i = 0; i < n; i++) {
        if (json_object_get(root, ts[i].name)) {
            nncc_fail(NNCC_ERR_GRAPH, "%s '%s': two tensors are named \"%s\"", who, path,
                      ts[i].name);
            goto fail;
        }
        json_t *t = json_object(), *shape = json_array(), *offs = json_array();
        if (!t || !shape || !offs) {
            json_decref(t);
            json_decref(shape);
            json_decref(offs);
            goto nomem;
        }
        uint64_t bytes = (uint64_t)ir_shape_numel(ts[i].shape, 0) * sizeof(float);
        bool bad = json_object_set_new(t, "dtype", json_string("F32")) != 0;
        for (int d = 0; d < ts[i].shape.rank; d++)
            bad |= json_array_append_new(shape, json_integer(ts[i].shape.dim[d])) != 0;
        bad |= json_array_append_new(offs, json_integer((json_int_t)offset)) != 0;
        bad |= json_array_append_new(offs, json_integer((json_int_t)(offset + bytes))) != 0;
        bad |= json_object_set_new(t, "shape", shape) != 0;
        bad |= json_object_set_new(t, "data_offsets", offs) != 0;
        bad |= json_object_set_new(root, ts[i].name, t) != 0;
        if (bad)
            goto nomem;
        offset += bytes;
    }
    text = json_dumps(root, JSON_COMPACT);
    if (!text)
        goto nomem;
    size_t tn = strlen(text), padded = tn + (8 - (8 + tn) % 8) % 8;
    char *out = realloc(text, padded + 1);
    if (!out)
        goto nomem;
    memset(out + tn, ' ', padded - tn);
    out[padded] = '\0';
    json_decref(md);
    json_decref(root);
    *len = padded;
    return out;
nomem:
    nncc_fail(NNCC_ERR_NOMEM, "%s '%s': out of memory", who, path);
fail:
    free(text);
    json_decref(md);
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

enum nncc_status st_write(const char *path, const char *who, const struct st_tensor *ts, int n,
                          json_t *meta, bool checksum)
{
    size_t hlen;
    char *header = make_header(path, who, ts, n, meta, checksum, &hlen);
    if (!header)
        return nncc_last_status();
    struct atomic_file af;
    if (atomic_open(&af, path, who)) {
        free(header);
        return nncc_last_status();
    }
    FILE *f = fdopen(af.fd, "wb");
    if (!f) {
        int e = errno;
        atomic_abort(&af, NULL);
        free(header);
        return nncc_fail(NNCC_ERR_IO, "%s '%s': %s", who, path, strerror(e));
    }
    unsigned char lenbuf[8];
    put_u64le(lenbuf, (uint64_t)hlen);
    errno = 0;
    bool ok = fwrite(lenbuf, 1, 8, f) == 8 && fwrite(header, 1, hlen, f) == hlen;
    for (int i = 0; i < n && ok; i++)
        ok = write_floats(f, ts[i].data, ir_shape_numel(ts[i].shape, 0));
    free(header);
    if (!ok) {
        int e = errno ? errno : EIO;
        atomic_abort(&af, f);
        return nncc_fail(NNCC_ERR_IO, "%s: cannot write '%s': %s", who, path, strerror(e));
    }
    return atomic_commit(&af, f, who, path);
}

/* ---- Reading ------------------------------------------------------------ */

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
static enum nncc_status parse_entry(const struct st_file *sf, const char *key, json_t *v,
                                    struct st_entry *e)
{
    const char *who = sf->who, *path = sf->path;
    if (!json_is_object(v))
        return nncc_fail(NNCC_ERR_FORMAT, "%s '%s': tensor \"%s\" is not a JSON object", who, path,
                         key);
    json_t *dtype = json_object_get(v, "dtype"), *shape = json_object_get(v, "shape");
    json_t *offs = json_object_get(v, "data_offsets");
    if (!json_is_string(dtype) || !json_is_array(shape) || !json_is_array(offs))
        return nncc_fail(NNCC_ERR_FORMAT,
                         "%s '%s': tensor \"%s\" needs \"dtype\", \"shape\" and \"data_offsets\"",
                         who, path, key);
    if (strcmp(json_string_value(dtype), "F32") != 0)
        return nncc_fail(NNCC_ERR_FORMAT,
                         "%s '%s': tensor \"%s\" has dtype %.20s; nncc reads F32 only", who, path,
                         key, json_string_value(dtype));
    size_t rank = json_array_size(shape);
    if (rank > NNCC_MAX_RANK)
        return nncc_fail(NNCC_ERR_FORMAT, "%s '%s': tensor \"%s\" has rank %zu (at most %d)", who,
                         path, key, rank, NNCC_MAX_RANK);
    e->name = key;
    e->used = false;
    e->shape.rank = (int)rank;
    uint64_t numel = 1;
    for (size_t d = 0; d < rank; d++) {
        json_t *x = json_array_get(shape, d);
        if (!json_is_integer(x) || json_integer_value(x) < 0)
            return nncc_fail(NNCC_ERR_FORMAT,
                             "%s '%s': tensor \"%s\" has a bad shape (dimension %zu is not a "
                             "non-negative integer)",
                             who, path, key, d);
        uint64_t dim = (uint64_t)json_integer_value(x);
        if (dim != 0 && numel > (UINT64_MAX / 8) / dim)
            return nncc_fail(NNCC_ERR_FORMAT, "%s '%s': tensor \"%s\" is impossibly large", who,
                             path, key);
        numel *= dim;
        e->shape.dim[d] = (int64_t)dim;
    }
    json_t *b = json_array_get(offs, 0), *end = json_array_get(offs, 1);
    if (json_array_size(offs) != 2 || !json_is_integer(b) || !json_is_integer(end) ||
        json_integer_value(b) < 0 || json_integer_value(end) < json_integer_value(b))
        return nncc_fail(NNCC_ERR_FORMAT,
                         "%s '%s': tensor \"%s\" has bad data_offsets (two integers 0 <= begin "
                         "<= end expected)",
                         who, path, key);
    e->begin = (uint64_t)json_integer_value(b);
    e->end = (uint64_t)json_integer_value(end);
    char s[160];
    if (e->end - e->begin != numel * sizeof(float))
        return nncc_fail(NNCC_ERR_FORMAT,
                         "%s '%s': tensor \"%s\" of shape %s needs %llu bytes but its "
                         "data_offsets [%llu, %llu] hold %llu",
                         who, path, key, shape_str(e->shape, s, sizeof s),
                         (unsigned long long)(numel * sizeof(float)), (unsigned long long)e->begin,
                         (unsigned long long)e->end, (unsigned long long)(e->end - e->begin));
    if (e->end > sf->data_len)
        return nncc_fail(NNCC_ERR_FORMAT,
                         "%s '%s': tensor \"%s\" ends at byte %llu of the data, but the file "
                         "holds only %llu bytes of data (truncated?)",
                         who, path, key, (unsigned long long)e->end,
                         (unsigned long long)sf->data_len);
    return NNCC_OK;
}

/* Checks the metadata: an object of strings (the format's rule). */
static enum nncc_status check_metadata(const struct st_file *sf, json_t *meta)
{
    if (!json_is_object(meta))
        return nncc_fail(NNCC_ERR_FORMAT, "%s '%s': \"__metadata__\" is not an object", sf->who,
                         sf->path);
    const char *k;
    json_t *v;
    json_object_foreach(meta, k, v) {
        if (!json_is_string(v))
            return nncc_fail(NNCC_ERR_FORMAT,
                             "%s '%s': \"__metadata__\" value \"%.64s\" is not a string", sf->who,
                             sf->path, k);
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

/* Reads the header (NUL-terminated) into sf; the error set on failure. */
static enum nncc_status read_header(struct st_file *sf)
{
    const char *who = sf->who, *path = sf->path;
    struct stat st;
    if (fstat(fileno(sf->f), &st) != 0 || !S_ISREG(st.st_mode))
        return nncc_fail(NNCC_ERR_IO, "%s: '%s' is not a regular file", who, path);
    uint64_t size = (uint64_t)st.st_size;
    unsigned char lenbuf[8];
    if (size < 8 || !read_at(sf->f, 0, lenbuf, 8))
        return nncc_fail(NNCC_ERR_FORMAT,
                         "%s: '%s' is not a safetensors file (%llu bytes: too short for the "
                         "8-byte header length)",
                         who, path, (unsigned long long)size);
    uint64_t n = get_u64le(lenbuf);
    if (n < 2 || n > ST_MAX_HEADER || n > size - 8)
        return nncc_fail(NNCC_ERR_FORMAT,
                         "%s: '%s' is not a safetensors file (header length %llu does not fit a "
                         "file of %llu bytes%s)",
                         who, path, (unsigned long long)n, (unsigned long long)size,
                         n > ST_MAX_HEADER ? "; the limit is 100 MB" : "");
    char *h = malloc((size_t)n + 1);
    if (!h)
        return nncc_fail(NNCC_ERR_NOMEM, "%s '%s': out of memory", who, path);
    if (!read_at(sf->f, 8, h, (size_t)n)) {
        free(h);
        return nncc_fail(NNCC_ERR_IO, "%s: cannot read the header of '%s'", who, path);
    }
    h[n] = '\0';
    if (h[0] != '{') {
        free(h);
        return nncc_fail(NNCC_ERR_FORMAT,
                         "%s: '%s' is not a safetensors file (the header is not a JSON object)",
                         who, path);
    }
    sf->header = h;
    sf->hlen = (size_t)n;
    sf->data_len = size - 8 - n;
    return NNCC_OK;
}

static enum nncc_status parse_header(struct st_file *sf)
{
    const char *who = sf->who, *path = sf->path;
    json_error_t jerr;
    sf->root = json_loadb(sf->header, sf->hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!sf->root)
        return nncc_fail(NNCC_ERR_FORMAT, "%s: '%s' has a malformed header: %s (line %d, column %d)",
                         who, path, jerr.text, jerr.line, jerr.column);
    if (!json_is_object(sf->root))
        return nncc_fail(NNCC_ERR_FORMAT, "%s: '%s': the header is not a JSON object", who, path);
    sf->ents = malloc(sizeof *sf->ents * (json_object_size(sf->root) + 1));
    if (!sf->ents)
        return nncc_fail(NNCC_ERR_NOMEM, "%s '%s': out of memory", who, path);
    const char *key;
    json_t *val;
    enum nncc_status st;
    json_object_foreach(sf->root, key, val) {
        if (strcmp(key, "__metadata__") == 0) {
            if ((st = check_metadata(sf, val)))
                return st;
            sf->meta = val;
            continue;
        }
        if ((st = parse_entry(sf, key, val, &sf->ents[sf->n_ents])))
            return st;
        sf->n_ents++;
    }
    /* Sorted by offset, the tensors must tile the data section exactly. */
    qsort(sf->ents, sf->n_ents, sizeof *sf->ents, by_offset);
    uint64_t at = 0;
    for (size_t i = 0; i < sf->n_ents; i++) {
        if (sf->ents[i].begin != at)
            return nncc_fail(NNCC_ERR_FORMAT,
                             "%s '%s': tensor \"%s\" starts at byte %llu of the data, but the "
                             "previous tensor ends at %llu (%s)",
                             who, path, sf->ents[i].name, (unsigned long long)sf->ents[i].begin,
                             (unsigned long long)at, sf->ents[i].begin < at ? "overlap" : "gap");
        at = sf->ents[i].end;
    }
    if (at != sf->data_len)
        return nncc_fail(NNCC_ERR_FORMAT,
                         "%s '%s': the tensors hold %llu bytes but the data section has %llu", who,
                         path, (unsigned long long)at, (unsigned long long)sf->data_len);
    return NNCC_OK;
}

enum nncc_status st_open(struct st_file *sf, const char *path, const char *who)
{
    memset(sf, 0, sizeof *sf);
    sf->path = path;
    sf->who = who;
    /* O_NONBLOCK: a FIFO under the name must not hang us; read_header then
     * insists on a regular file. */
    int fd = open(path, O_RDONLY | O_NONBLOCK);
    sf->f = fd >= 0 ? fdopen(fd, "rb") : NULL;
    if (!sf->f) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return nncc_fail(NNCC_ERR_IO, "%s: cannot open '%s': %s", who, path, strerror(e));
    }
    enum nncc_status st = read_header(sf);
    if (!st)
        st = parse_header(sf);
    if (st)
        st_close(sf);
    return st;
}

void st_close(struct st_file *sf)
{
    free(sf->ents);
    json_decref(sf->root);
    free(sf->header);
    if (sf->f)
        fclose(sf->f);
    sf->ents = NULL;
    sf->root = sf->meta = NULL;
    sf->header = NULL;
    sf->f = NULL;
    sf->n_ents = 0;
}

struct st_entry *st_find(struct st_file *sf, const char *name)
{
    for (size_t i = 0; i < sf->n_ents; i++)
        if (strcmp(sf->ents[i].name, name) == 0)
            return &sf->ents[i];
    return NULL;
}

const char *st_meta(const struct st_file *sf, const char *key)
{
    return sf->meta ? json_string_value(json_object_get(sf->meta, key)) : NULL;
}

enum nncc_status st_read(struct st_file *sf, const struct st_entry *e, float *dst)
{
    size_t n = (size_t)((e->end - e->begin) / sizeof(float));
    if (!read_at(sf->f, 8 + sf->hlen + e->begin, dst, n * sizeof(float)))
        return nncc_fail(NNCC_ERR_IO, "%s: cannot read tensor \"%s\" of '%s'", sf->who, e->name,
                         sf->path);
    if (!host_is_little_endian())
        swap_floats(dst, n);
    return NNCC_OK;
}

enum nncc_status st_data_sha256(struct st_file *sf, char hex[65])
{
    struct nncc_sha256 s;
    unsigned char digest[NNCC_SHA256_SIZE];
    unsigned char *buf = malloc(1 << 16);
    if (!buf)
        return nncc_fail(NNCC_ERR_NOMEM, "%s '%s': out of memory", sf->who, sf->path);
    nncc_sha256_init(&s);
    uint64_t off = 8 + sf->hlen, left = sf->data_len;
    bool ok = left == 0 || fseeko(sf->f, (off_t)off, SEEK_SET) == 0;
    while (ok && left > 0) {
        size_t k = left < (1 << 16) ? (size_t)left : (1 << 16);
        ok = fread(buf, 1, k, sf->f) == k;
        if (ok)
            nncc_sha256_update(&s, buf, k);
        left -= k;
    }
    free(buf);
    if (!ok)
        return nncc_fail(NNCC_ERR_IO, "%s: cannot read the data of '%s'", sf->who, sf->path);
    nncc_sha256_final(&s, digest);
    nncc_sha256_hex(digest, hex);
    return NNCC_OK;
}

/* ---- Weights files ------------------------------------------------------ */

/* Runs the statement after it with w = each weight of the model's layers,
 * in model order (Keras' model.weights order). */
#define FOR_WEIGHTS(m, w)                                                \
    for (int li_ = 0; li_ < (m)->n_layers; li_++)                        \
        for (int wi_ = 0; wi_ < (m)->layers[li_]->n_weights; wi_++)      \
            for (nncc_tensor *w = (m)->layers[li_]->weights[wi_]; w; w = NULL)

enum nncc_status nncc_save_weights(const nncc_model *m, const char *path)
{
    if (!m || !path || !*path)
        return nncc_fail(NNCC_ERR_ARG, "save_weights: %s is NULL or empty",
                         !m ? "the model" : "the path");
    if (!model_check_ready(m))
        return nncc_last_status();
    int n = 0;
    FOR_WEIGHTS(m, w) n++;
    struct st_tensor *ts = malloc(sizeof *ts * (size_t)(n + 1));
    json_t *meta = json_object();
    enum nncc_status st;
    if (!ts || !meta || json_object_set_new(meta, "format", json_string(ST_FORMAT)) ||
        json_object_set_new(meta, "nncc_version", json_string(NNCC_VERSION_STRING)) ||
        json_object_set_new(meta, "model", json_string(m->name ? m->name : ""))) {
        st = nncc_fail(NNCC_ERR_NOMEM, "save_weights '%s': out of memory", path);
    } else {
        n = 0;
        FOR_WEIGHTS(m, w) ts[n++] = (struct st_tensor){w->name, w->shape, w->data};
        st = st_write(path, "save_weights", ts, n, meta, false);
    }
    json_decref(meta);
    free(ts);
    return st;
}

enum nncc_status nncc_load_weights(nncc_model *m, const char *path)
{
    if (!m || !path || !*path)
        return nncc_fail(NNCC_ERR_ARG, "load_weights: %s is NULL or empty",
                         !m ? "the model" : "the path");
    if (!model_check_ready(m))
        return nncc_last_status();
    struct st_file sf;
    enum nncc_status st = st_open(&sf, path, "load_weights");
    if (st)
        return st;
    /* A whole-model file: its optimizer slots are not weights. */
    const char *format = st_meta(&sf, "format");
    if (format && strcmp(format, "nncc-model") == 0)
        for (size_t i = 0; i < sf.n_ents; i++)
            if (strncmp(sf.ents[i].name, "optimizer/", 10) == 0)
                sf.ents[i].used = true;
    /* Match by name, check shapes, find extras. */
    size_t total = 0;
    float *stage = NULL;
    FOR_WEIGHTS(m, w) {
        struct st_entry *e = st_find(&sf, w->name);
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
        e->used = true;
        total += (size_t)ir_shape_numel(w->shape, 0);
    }
    for (size_t i = 0; i < sf.n_ents; i++)
        if (!sf.ents[i].used) {
            st = nncc_fail(NNCC_ERR_FORMAT,
                           "load_weights '%s': tensor \"%s\" matches no weight of model \"%s\"",
                           path, sf.ents[i].name, m->name);
            goto done;
        }
    /* Stage every value, then commit: a failure leaves the model unchanged. */
    stage = malloc(sizeof *stage * (total + 1));
    if (!stage) {
        st = nncc_fail(NNCC_ERR_NOMEM, "load_weights '%s': out of memory", path);
        goto done;
    }
    size_t pos = 0;
    FOR_WEIGHTS(m, w) {
        if ((st = st_read(&sf, st_find(&sf, w->name), stage + pos)))
            goto done;
        pos += (size_t)ir_shape_numel(w->shape, 0);
    }
    pos = 0;
    FOR_WEIGHTS(m, w) {
        size_t k = (size_t)ir_shape_numel(w->shape, 0);
        memcpy(w->data, stage + pos, k * sizeof(float));
        pos += k;
    }
done:
    free(stage);
    st_close(&sf);
    return st;
}
