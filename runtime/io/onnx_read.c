/*
 * onnx_read.c — reading ONNX protobuf files: whole models and single
 * tensors (ONNX's own test data, input_0.pb), with the protobuf-c code the
 * build generates from Debian's onnx.proto.
 *
 * Contract: onnx_model_read() returns the unpacked ModelProto or NULL with
 * an error naming the file; onnx_tensor_values() converts a TensorProto of
 * any numeric type nncc accepts (float, double, float16 no; int8…int64,
 * uint8…uint32, bool) into floats or int64s, reading external data from a
 * file next to the model whose path may not leave the model's folder.  Every
 * size is checked against the data actually present before it is used.
 */
#define _DEFAULT_SOURCE /* realpath */
#include <errno.h>
#include <stdio.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "onnx_io.h"
#include "open_regular.h"

/* Whole-file read with a size bound. */
static uint8_t *slurp(const char *path, size_t *len)
{
    struct stat st;
    const char *why;
    int fd = io_open_regular(path, &st, &why);
    if (fd < 0) {
        if (why)
            nncc_fail(NNCC_ERR_IO, "'%s': %s", path, why);
        else
            nncc_fail(NNCC_ERR_IO, "'%s': cannot open: %s", path, strerror(errno));
        return NULL;
    }
    if (st.st_size > ((off_t)1 << 34)) {
        close(fd);
        nncc_fail(NNCC_ERR_IO, "'%s': %lld bytes is more than nncc reads", path,
                  (long long)st.st_size);
        return NULL;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    size_t cap = (size_t)st.st_size + 1, n = 0;
    uint8_t *buf = malloc(cap);
    if (!buf) {
        close(fd);
        nncc_fail(NNCC_ERR_NOMEM, "'%s': out of memory", path);
        return NULL;
    }
    for (;;) {
        if (n == cap) { /* the file grew while read */
            uint8_t *b = realloc(buf, cap * 2);
            if (!b) {
                free(buf);
                close(fd);
                nncc_fail(NNCC_ERR_NOMEM, "'%s': out of memory", path);
                return NULL;
            }
            buf = b, cap *= 2;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            nncc_fail(NNCC_ERR_IO, "'%s': cannot read: %s", path, strerror(errno));
            free(buf);
            close(fd);
            return NULL;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    *len = n;
    return buf;
}

Onnx__ModelProto *onnx_model_read(const char *path)
{
    size_t len;
    uint8_t *buf = slurp(path, &len);
    if (!buf)
        return NULL;
    Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, len, buf);
    free(buf);
    if (!m)
        nncc_fail(NNCC_ERR_FORMAT, "'%s': not an ONNX model (the protobuf does not parse)", path);
    else if (!m->graph) {
        onnx__model_proto__free_unpacked(m, NULL);
        m = NULL;
        nncc_fail(NNCC_ERR_FORMAT, "'%s': the ONNX model has no graph", path);
    }
    return m;
}

void onnx_model_free(Onnx__ModelProto *m)
{
    if (m)
        onnx__model_proto__free_unpacked(m, NULL);
}

static int elem_size(int dt)
{
    switch (dt) {
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT:
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT32:
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT32: return 4;
    case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE:
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT64:
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT64: return 8;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT16:
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT16: return 2;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT8:
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT8:
    case ONNX__TENSOR_PROTO__DATA_TYPE__BOOL: return 1;
    default: return 0;
    }
}

const char *onnx_dtype_name(int dt)
{
    static const char *const names[] = {"undefined", "float", "uint8", "int8", "uint16", "int16",
                                        "int32", "int64", "string", "bool", "float16", "double",
                                        "uint32", "uint64", "complex64", "complex128", "bfloat16"};
    return dt >= 0 && dt < (int)(sizeof names / sizeof names[0]) ? names[dt] : "unknown";
}

/* One element of little-endian raw bytes. */
static void raw_elem(const uint8_t *p, int dt, double *d, int64_t *i)
{
    uint64_t u = 0;
    int n = elem_size(dt);
    for (int b = 0; b < n; b++)
        u |= (uint64_t)p[b] << (8 * b);
    switch (dt) {
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: {
        uint32_t w = (uint32_t)u;
        float f;
        memcpy(&f, &w, 4);
        *d = f;
        *i = onnx_to_int(f);
        return;
    }
    case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE: {
        double f;
        memcpy(&f, &u, 8);
        *d = f;
        *i = onnx_to_int(f);
        return;
    }
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT8: *i = (int8_t)u; break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT16: *i = (int16_t)u; break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT32: *i = (int32_t)u; break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT64: *i = (int64_t)u; break;
    default: *i = (int64_t)u; break; /* unsigned, bool */
    }
    *d = (double)*i;
}

/* External data: "location" relative to dir, no "..", no absolute path. */
static uint8_t *external(const Onnx__TensorProto *t, const char *dir, size_t need, const char *who)
{
    const char *loc = NULL;
    long long off = 0, len = -1;
    for (size_t k = 0; k < t->n_external_data; k++) {
        const char *key = t->external_data[k]->key, *v = t->external_data[k]->value;
        if (!key || !v)
            continue;
        if (strcmp(key, "location") == 0)
            loc = v;
        else if (strcmp(key, "offset") == 0)
            off = strtoll(v, NULL, 10);
        else if (strcmp(key, "length") == 0)
            len = strtoll(v, NULL, 10);
    }
    if (!loc || !*loc || loc[0] == '/' || strstr(loc, "..") || off < 0) {
        nncc_fail(NNCC_ERR_FORMAT, "%s: external data location \"%s\" must be a file inside the "
                                   "model's folder",
                  who, loc ? loc : "");
        return NULL;
    }
    if (len >= 0 && (size_t)len != need) {
        nncc_fail(NNCC_ERR_FORMAT, "%s: external data length %lld; the tensor needs %zu bytes", who,
                  len, need);
        return NULL;
    }
    char path[PATH_MAX];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, loc) >= sizeof path) {
        nncc_fail(NNCC_ERR_FORMAT, "%s: external data path too long", who);
        return NULL;
    }
    /* Resolve symlinks too: the real file must stay under the real folder. */
    char rdir[PATH_MAX], rfile[PATH_MAX];
    if (!realpath(dir, rdir) || !realpath(path, rfile)) {
        nncc_fail(NNCC_ERR_IO, "%s: external data '%s': %s", who, path, strerror(errno));
        return NULL;
    }
    size_t nd = strlen(rdir);
    if (strncmp(rfile, rdir, nd) != 0 || (rfile[nd] != '/' && nd > 1)) {
        nncc_fail(NNCC_ERR_FORMAT, "%s: external data '%s' resolves outside the model's folder", who,
                  path);
        return NULL;
    }
    size_t flen;
    uint8_t *buf = slurp(path, &flen);
    if (!buf)
        return NULL;
    if ((size_t)off > flen || flen - (size_t)off < need) {
        free(buf);
        nncc_fail(NNCC_ERR_FORMAT, "%s: external data '%s' has %zu bytes; needs %zu from offset %lld",
                  who, path, flen, need, off);
        return NULL;
    }
    memmove(buf, buf + off, need);
    return buf;
}

bool onnx_tensor_values(const Onnx__TensorProto *t, const char *dir, struct onnx_tensor *out)
{
    memset(out, 0, sizeof *out);
    char who[NNCC_MAX_NAME + 32];
    snprintf(who, sizeof who, "tensor \"%.*s\"", NNCC_MAX_NAME, t->name ? t->name : "");
    int dt = t->has_data_type ? t->data_type : 0;
    int es = elem_size(dt);
    if (!es) {
        nncc_fail(NNCC_ERR_UNSUPPORTED, "%s: data type %s is not supported", who,
                  onnx_dtype_name(dt));
        return false;
    }
    if (t->n_dims >= NNCC_MAX_RANK) {
        nncc_fail(NNCC_ERR_UNSUPPORTED, "%s: rank %zu is more than nncc supports", who, t->n_dims);
        return false;
    }
    int64_t n = 1;
    out->shape.rank = (int)t->n_dims;
    for (size_t i = 0; i < t->n_dims; i++) {
        if (t->dims[i] < 0 || t->dims[i] > ((int64_t)1 << 40) ||
            (t->dims[i] > 0 && n > ((int64_t)1 << 40) / t->dims[i])) {
            nncc_fail(NNCC_ERR_FORMAT, "%s: bad dimension %lld", who, (long long)t->dims[i]);
            return false;
        }
        out->shape.dim[i] = t->dims[i];
        n *= t->dims[i];
    }
    out->count = n;
    out->dtype = dt;
    out->is_int = dt != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT &&
                  dt != ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE;
    size_t need = (size_t)n * (size_t)es;
    const uint8_t *raw = NULL;
    uint8_t *ext = NULL;
    if (t->has_data_location && t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) {
        if (!dir) {
            nncc_fail(NNCC_ERR_FORMAT, "%s: external data outside a model file", who);
            return false;
        }
        if (!(raw = ext = external(t, dir, need, who)))
            return false;
    } else if (t->has_raw_data) {
        if (t->raw_data.len != need) {
            nncc_fail(NNCC_ERR_FORMAT, "%s: %zu bytes of raw data for %lld %s values", who,
                      t->raw_data.len, (long long)n, onnx_dtype_name(dt));
            return false;
        }
        raw = t->raw_data.data;
    }
    /* Typed fields: float_data, double_data, int64_data, uint64_data, and
     * int32_data for every narrower integer type. */
    size_t have;
    switch (dt) {
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: have = t->n_float_data; break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE: have = t->n_double_data; break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT64: have = t->n_int64_data; break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT64:
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT32: have = t->n_uint64_data; break;
    default: have = t->n_int32_data; break;
    }
    if (!raw && have != (size_t)n) {
        nncc_fail(NNCC_ERR_FORMAT, "%s: %zu values for %lld elements", who, have, (long long)n);
        return false;
    }
    /* Only now, with the data known to be there, the arrays. */
    out->f = malloc((size_t)(n ? n : 1) * sizeof *out->f);
    out->i = malloc((size_t)(n ? n : 1) * sizeof *out->i);
    if (!out->f || !out->i) {
        onnx_tensor_free(out);
        free(ext);
        nncc_fail(NNCC_ERR_NOMEM, "%s: out of memory", who);
        return false;
    }
    if (raw) {
        for (int64_t k = 0; k < n; k++) {
            double d;
            raw_elem(raw + k * es, dt, &d, &out->i[k]);
            out->f[k] = (float)d;
        }
        free(ext);
        return true;
    }
    for (int64_t k = 0; k < n; k++) {
        switch (dt) {
        case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT:
            out->f[k] = t->float_data[k], out->i[k] = onnx_to_int(t->float_data[k]);
            continue;
        case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE:
            out->f[k] = (float)t->double_data[k], out->i[k] = onnx_to_int(t->double_data[k]);
            continue;
        case ONNX__TENSOR_PROTO__DATA_TYPE__INT64: out->i[k] = t->int64_data[k]; break;
        case ONNX__TENSOR_PROTO__DATA_TYPE__UINT64:
        case ONNX__TENSOR_PROTO__DATA_TYPE__UINT32: out->i[k] = (int64_t)t->uint64_data[k]; break;
        default: out->i[k] = t->int32_data[k]; break;
        }
        out->f[k] = (float)out->i[k];
    }
    return true;
}

void onnx_tensor_free(struct onnx_tensor *t)
{
    free(t->f);
    free(t->i);
    t->f = NULL;
    t->i = NULL;
}

struct nncc_array *nncc_load_onnx_tensor(const char *path)
{
    return nncc_load_onnx_tensor_named(path, NULL, 0);
}

struct nncc_array *nncc_load_onnx_tensor_named(const char *path, char *name, size_t size)
{
    if (name && size)
        name[0] = 0;
    size_t len;
    uint8_t *buf = slurp(path, &len);
    if (!buf)
        return NULL;
    Onnx__TensorProto *t = onnx__tensor_proto__unpack(NULL, len, buf);
    free(buf);
    if (!t)
        return NNCC_FAIL_NULL(NNCC_ERR_FORMAT, "'%s': not an ONNX TensorProto", path);
    if (name && size && t->name)
        snprintf(name, size, "%s", t->name);
    struct onnx_tensor v;
    bool ok = onnx_tensor_values(t, NULL, &v);
    onnx__tensor_proto__free_unpacked(t, NULL);
    if (!ok) {
        char msg[1024];
        snprintf(msg, sizeof msg, "'%s': %s", path, nncc_last_error());
        nncc_fail(nncc_last_status(), "%s", msg);
        return NULL;
    }
    struct nncc_array *a = NULL;
    if (v.shape.rank == 0) /* a scalar: one element */
        v.shape = NNCC_SHAPE(1);
    if (v.count == 0) {
        onnx_tensor_free(&v);
        return NNCC_FAIL_NULL(NNCC_ERR_UNSUPPORTED, "'%s': an empty tensor (an array has at "
                                                    "least one element)",
                              path);
    }
    a = nncc_array_new(v.shape);
    if (a) {
        memcpy(a->data, v.f, (size_t)v.count * sizeof(float));
    } else {
        char msg[1024];
        snprintf(msg, sizeof msg, "'%s': %s", path, nncc_last_error());
        nncc_fail(nncc_last_status(), "%s", msg);
    }
    onnx_tensor_free(&v);
    return a;
}
