/*
 * keras_h5.c — the HDF5 subset of Keras model files (keras_h5.h) over
 * Debian's libhdf5 1.10.
 *
 * Contract (see keras_h5.h): read-only files from a path or from memory,
 * writable files in memory only (the core driver without a backing store;
 * kh5_image hands out the bytes).  Every public function:
 *   - silences libhdf5's automatic error printing for its own duration
 *     (struct h5quiet): nncc keeps no global mutable state, so the caller's
 *     setting is saved and restored around each call instead of being
 *     switched off once.  Debian's libhdf5 is built thread-safe, where the
 *     setting is per thread, so this never affects another thread;
 *   - reports failures through nncc_fail() naming the file's label and the
 *     object, with libhdf5's innermost reason appended when it has one;
 *   - reaches objects only through hard links, one component at a time
 *     (open_obj): soft and external links are refused, so a hostile file
 *     cannot make libhdf5 open another file (a FIFO, a device);
 *   - checks sizes before any allocation of its own: element counts against
 *     KH5_MAX_ELEMENTS and against the bytes the file actually stores,
 *     string lengths against KH5_MAX_STRING, list lengths against
 *     KH5_MAX_CHILDREN.  Datasets stored outside the file (external storage,
 *     virtual datasets) are refused.
 * Variable-length strings are allocated by libhdf5 itself while reading,
 * and their lengths can only be checked after the read.
 *
 * Read-only files are never read by libhdf5 in the caller's process.
 * libhdf5 1.10.8 is not safe on hostile files, and nothing above can check
 * first (found by tests/fuzz/fuzz_keras.c; tests/keras/h5hostile/): reading
 * a variable-length string (H5Aread -> H5T__conv_vlen, how Keras stores
 * model_config) allocates the length the file declares, 3 to 16 GB, and
 * its global heap parsing (H5HG_read) hangs in H5HG__protect, overlaps
 * memcpy ranges or crashes; H5Aexists and H5Literate (H5G__stab_iterate)
 * read out of bounds on a corrupt object header or symbol table.  So
 * kh5_open reads the file into memory, and kh5_open and kh5_open_image
 * hand the bytes to keras_h5_tree.c, which forks a child that runs this
 * file's readers over the whole file (kh5_child_walk, at the end) and
 * sends what they found, failures included, through a pipe; the read
 * functions then answer from that tree with the same results and
 * messages.  A child that crashes, hangs (alarm) or exceeds its memory
 * cap is a clean NNCC_ERR_FORMAT.  Costs: one fork per open (a few ms),
 * the file's values copied once through the pipe and kept as float32
 * while the file is open.  Threads: see keras_h5_tree.c.  Files made by
 * kh5_create (nncc's own) are read and written in-process.
 */
#include "runtime/io/keras_h5.h"

#include <errno.h>
#include <stdarg.h>
#include <hdf5.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ir/error.h"
#include "runtime/io/keras_h5_tree.h"
#include "runtime/io/open_regular.h"

/* Deflate inflates at most ~1032:1: a chunked dataset declaring more than
 * this many times the bytes it stores is refused before anyone allocates. */
#define KH5_MAX_RATIO 1100

struct kh5 {
    hid_t file;
    char *label;
    bool writable;
    /* A read-only file: the tree its child process sent (keras_h5_tree.c). */
    struct kh5_tree *tree;
    /* The last failure's kind and tail (kfail), which the child sends. */
    enum nncc_status estatus;
    int ekind;
    char etail[512];
};

/* ---- libhdf5's error printing, off for the duration of one call ---- */

struct h5quiet {
    H5E_auto2_t fn;
    void *data;
};

static void quiet_begin(struct h5quiet *q)
{
    q->fn = NULL;
    q->data = NULL;
    H5Eget_auto2(H5E_DEFAULT, &q->fn, &q->data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    H5Eclear2(H5E_DEFAULT);
}

static void quiet_end(const struct h5quiet *q)
{
    H5Eclear2(H5E_DEFAULT);
    H5Eset_auto2(H5E_DEFAULT, q->fn, q->data);
}

/* The innermost (first pushed) error description of libhdf5's stack. */
struct why {
    char text[160];
};

static herr_t why_walk(unsigned n, const H5E_error2_t *e, void *data)
{
    struct why *w = data;
    if (n == 0 && e->desc) snprintf(w->text, sizeof w->text, " (libhdf5: %s)", e->desc);
    return 0;
}

static const char *h5why(struct why *w)
{
    w->text[0] = 0;
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, why_walk, w);
    return w->text;
}

#define LBL(f) ((f)->label)

enum nncc_status kh5_raise(enum nncc_status st, const char *label, int kind, const char *p,
                           const char *n, const char *tail)
{
    p = p ? p : "";
    n = n ? n : "";
    switch (kind) {
    case KH5_K_DS: return nncc_fail(st, "'%s': dataset '%s'%s", label, p, tail);
    case KH5_K_READ_DS: return nncc_fail(st, "'%s': cannot read dataset '%s'%s", label, p, tail);
    case KH5_K_ATTR: return nncc_fail(st, "'%s': attribute '%s' of '%s'%s", label, n, p, tail);
    case KH5_K_READ_ATTR:
        return nncc_fail(st, "'%s': cannot read attribute '%s' of '%s'%s", label, n, p, tail);
    case KH5_K_OPEN_OBJ: return nncc_fail(st, "'%s': cannot open object '%s'%s", label, p, tail);
    case KH5_K_GROUP: return nncc_fail(st, "'%s': group '%s'%s", label, p, tail);
    case KH5_K_LIST: return nncc_fail(st, "'%s': cannot list group '%s'%s", label, p, tail);
    default: return nncc_fail(st, "'%s': %s", label, tail);
    }
}

/* Fails with a message of the given kind (keras_h5_tree.h), remembering
 * the kind and the tail so that the child can send them. */
NNCC_PRINTF(6, 7)
static enum nncc_status kfail(struct kh5 *f, enum nncc_status st, int kind, const char *p,
                              const char *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->etail, sizeof f->etail, fmt, ap);
    va_end(ap);
    f->estatus = st;
    f->ekind = kind;
    return kh5_raise(st, f->label, kind, p, n, f->etail);
}

/* ---- Objects by path ---- */

static enum nncc_status check_path(const struct kh5 *f, const char *path)
{
    if (!path) return nncc_fail(NNCC_ERR_ARG, "'%s': no object path given", LBL(f));
    if (strlen(path) > KH5_MAX_PATH)
        return nncc_fail(NNCC_ERR_FORMAT, "'%s': object path of %zu bytes (at most %d): '%.64s...'",
                         LBL(f), strlen(path), KH5_MAX_PATH, path);
    return NNCC_OK;
}

/* Opens the object at path through hard links only, or returns -1.  With
 * `report`, a missing object is an error; else -1 without an error set. */
static hid_t open_obj(struct kh5 *f, const char *path, bool report)
{
    if (check_path(f, path) != NNCC_OK) return -1;
    char comp[KH5_MAX_PATH + 1];
    struct why w;
    hid_t cur = H5Oopen(f->file, "/", H5P_DEFAULT);
    if (cur < 0) {
        if (report)
            nncc_fail(NNCC_ERR_FORMAT, "'%s': cannot open the root group%s", LBL(f), h5why(&w));
        return -1;
    }
    const char *p = path;
    while (*p) {
        while (*p == '/') p++;
        if (!*p) break;
        size_t len = strcspn(p, "/");
        memcpy(comp, p, len);
        comp[len] = 0;
        p += len;
        H5L_info_t li;
        htri_t ex = H5Lexists(cur, comp, H5P_DEFAULT);
        if (ex <= 0 || H5Lget_info(cur, comp, &li, H5P_DEFAULT) < 0) {
            if (report)
                nncc_fail(NNCC_ERR_FORMAT, "'%s': no object '%s' (no '%s')%s", LBL(f), path, comp,
                          ex < 0 ? h5why(&w) : "");
            H5Oclose(cur);
            return -1;
        }
        if (li.type != H5L_TYPE_HARD) {
            if (report)
                nncc_fail(NNCC_ERR_FORMAT,
                          "'%s': object '%s': '%s' is a %s link, which Keras files do not use "
                          "(refused)",
                          LBL(f), path, comp,
                          li.type == H5L_TYPE_SOFT       ? "soft"
                          : li.type == H5L_TYPE_EXTERNAL ? "external"
                                                         : "user-defined");
            H5Oclose(cur);
            return -1;
        }
        hid_t next = H5Oopen(cur, comp, H5P_DEFAULT);
        H5Oclose(cur);
        if (next < 0) {
            if (report)
                kfail(f, NNCC_ERR_FORMAT, KH5_K_OPEN_OBJ, path, NULL, "%s", h5why(&w));
            return -1;
        }
        cur = next;
    }
    return cur;
}

static H5I_type_t obj_type(struct kh5 *f, const char *path)
{
    hid_t o = open_obj(f, path, false);
    if (o < 0) return H5I_BADID;
    H5I_type_t t = H5Iget_type(o);
    H5Oclose(o);
    return t;
}

/* Opens a dataset, checked: a numeric or string type, a simple or scalar
 * dataspace of rank <= NNCC_MAX_RANK, at most KH5_MAX_ELEMENTS elements,
 * stored in the file and not more than it stores.  Fills *shape and *count. */
static hid_t open_dataset(struct kh5 *f, const char *path, struct nncc_shape *shape,
                          int64_t *count)
{
    hid_t d = open_obj(f, path, true);
    if (d < 0) return -1;
    struct why w;
    if (H5Iget_type(d) != H5I_DATASET) {
        nncc_fail(NNCC_ERR_FORMAT, "'%s': '%s' is not a dataset", LBL(f), path);
        H5Oclose(d);
        return -1;
    }
    hid_t space = H5Dget_space(d), type = H5Dget_type(d), dcpl = H5Dget_create_plist(d);
    enum nncc_status st = NNCC_OK;
    if (space < 0 || type < 0 || dcpl < 0) {
        st = kfail(f, NNCC_ERR_FORMAT, KH5_K_DS, path, NULL, ": unreadable header%s", h5why(&w));
        goto done;
    }
    H5S_class_t sc = H5Sget_simple_extent_type(space);
    int rank = H5Sget_simple_extent_ndims(space);
    if ((sc != H5S_SCALAR && sc != H5S_SIMPLE) || rank < 0 || rank > NNCC_MAX_RANK) {
        st = kfail(f, NNCC_ERR_FORMAT, KH5_K_DS, path, NULL, ": %s (at most rank %d)",
                       sc == H5S_NULL ? "a null dataspace, no data" : "unsupported dataspace",
                       NNCC_MAX_RANK);
        goto done;
    }
    hsize_t dims[NNCC_MAX_RANK];
    if (rank > 0 && H5Sget_simple_extent_dims(space, dims, NULL) != rank) {
        st = kfail(f, NNCC_ERR_FORMAT, KH5_K_DS, path, NULL, ": unreadable dimensions%s",
                   h5why(&w));
        goto done;
    }
    int64_t n = 1;
    shape->rank = rank;
    for (int i = 0; i < rank; i++) {
        if (dims[i] > (hsize_t)KH5_MAX_ELEMENTS ||
            (dims[i] > 0 && n > KH5_MAX_ELEMENTS / (int64_t)dims[i])) {
            st = kfail(f, NNCC_ERR_FORMAT, KH5_K_DS, path, NULL,
                       ": more than %lld elements (dimension %d is %llu)",
                       (long long)KH5_MAX_ELEMENTS, i,
                           (unsigned long long)dims[i]);
            goto done;
        }
        shape->dim[i] = (int64_t)dims[i];
        n *= (int64_t)dims[i];
    }
    for (int i = rank; i < NNCC_MAX_RANK; i++) shape->dim[i] = 0;
    *count = n;
    if (H5Pget_external_count(dcpl) != 0 || H5Pget_layout(dcpl) == H5D_VIRTUAL) {
        st = kfail(f, NNCC_ERR_UNSUPPORTED, KH5_K_DS, path, NULL,
                   " keeps its data outside the file (refused)");
        goto done;
    }
    size_t tsize = H5Tget_size(type);
    if (tsize == 0 || tsize > 64) {
        st = kfail(f, NNCC_ERR_FORMAT, KH5_K_DS, path, NULL, ": element size %zu", tsize);
        goto done;
    }
    /* The bytes declared against the bytes stored: a contiguous dataset
     * stores all of them (and not more than the file holds), a chunked
     * one at least 1/KH5_MAX_RATIO of them.  A dataset never written
     * stores nothing and reads as its fill value. */
    hsize_t need = (hsize_t)n * tsize, stored = H5Dget_storage_size(d);
    H5D_layout_t layout = H5Pget_layout(dcpl);
    hsize_t fsize = 0;
    H5Fget_filesize(f->file, &fsize);
    if (stored > 0 || layout == H5D_CHUNKED) {
        bool bad = layout == H5D_CHUNKED ? need / KH5_MAX_RATIO > stored
                                         : stored < need || (!f->writable && stored > fsize);
        if (bad) {
            st = kfail(f, NNCC_ERR_FORMAT, KH5_K_DS, path, NULL,
                       " declares %llu bytes of data but the file stores "
                       "%llu (file of %llu bytes)",
                       (unsigned long long)need, (unsigned long long)stored,
                           (unsigned long long)fsize);
            goto done;
        }
    }
    if (layout == H5D_CHUNKED) {
        hsize_t cdims[32];
        int crank = H5Pget_chunk(dcpl, 32, cdims);
        hsize_t cn = tsize;
        for (int i = 0; i < crank && i < 32; i++) {
            if (cdims[i] > ((hsize_t)1 << 40) / (cn ? cn : 1)) {
                cn = (hsize_t)1 << 40;
                break;
            }
            cn *= cdims[i];
        }
        if (crank < 0 || cn > ((hsize_t)64 << 20) + need) {
            st = kfail(f, NNCC_ERR_FORMAT, KH5_K_DS, path, NULL,
                       ": chunks of %llu bytes for %llu bytes of data", (unsigned long long)cn,
                       (unsigned long long)need);
            goto done;
        }
    }
done:
    if (space >= 0) H5Sclose(space);
    if (type >= 0) H5Tclose(type);
    if (dcpl >= 0) H5Pclose(dcpl);
    if (st != NNCC_OK) {
        H5Dclose(d);
        return -1;
    }
    return d;
}

/* The dataset's element type class, checked numeric. */
static enum nncc_status numeric_class(struct kh5 *f, const char *path, hid_t d, H5T_class_t *cls)
{
    hid_t t = H5Dget_type(d);
    *cls = t < 0 ? H5T_NO_CLASS : H5Tget_class(t);
    if (t >= 0) H5Tclose(t);
    if (*cls != H5T_INTEGER && *cls != H5T_FLOAT)
        return kfail(f, NNCC_ERR_FORMAT, KH5_K_DS, path, NULL,
                     " is not numeric (HDF5 type class %d: %s)", (int)*cls,
                         *cls == H5T_STRING       ? "a string"
                         : *cls == H5T_COMPOUND   ? "a compound"
                         : *cls == H5T_REFERENCE  ? "a reference"
                         : *cls == H5T_ENUM       ? "an enum (h5py's bool)"
                         : *cls == H5T_OPAQUE     ? "opaque bytes"
                         : *cls == H5T_VLEN       ? "a variable-length sequence"
                         : *cls == H5T_ARRAY      ? "an array type"
                         : *cls == H5T_BITFIELD   ? "a bitfield"
                                                  : "unknown");
    return NNCC_OK;
}

/* ---- Opening and closing ---- */

static struct kh5 *kh5_new(const char *label)
{
    struct kh5 *f = calloc(1, sizeof *f);
    char *l = strdup(label ? label : "(unnamed)");
    if (!f || !l) {
        free(f);
        free(l);
        return NNCC_FAIL_NULL(NNCC_ERR_NOMEM, "'%s': out of memory", label ? label : "");
    }
    f->file = -1;
    f->label = l;
    return f;
}

static void kh5_free(struct kh5 *f)
{
    if (!f) return;
    if (f->file >= 0) H5Fclose(f->file);
    kh5_tree_free(f->tree);
    free(f->label);
    free(f);
}

/* A core-driver file access list (memory, no backing store); the
 * in-memory name is unique per handle, because libhdf5 refuses to open two
 * files of the same name at once. */
static hid_t core_fapl(void)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0) return -1;
    if (H5Pset_fapl_core(fapl, (size_t)1 << 16, 0) < 0 ||
        /* Close the file even when a caller still holds an object of it. */
        H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) < 0) {
        H5Pclose(fapl);
        return -1;
    }
    return fapl;
}

/* The HDF5 signature: at offset 0, 512, 1024, ... (a user block before it). */
static bool has_signature(const unsigned char *p, size_t size)
{
    static const unsigned char sig[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
    for (size_t off = 0; off + 8 <= size; off = off ? off * 2 : 512)
        if (!memcmp(p + off, sig, 8)) return true;
    return false;
}

/* Opens an image with libhdf5 in this process: in the child only (for a
 * read-only file; kh5_child_walk). */
static struct kh5 *open_image_h5(const void *data, size_t size, const char *label)
{
    struct kh5 *f = kh5_new(label);
    if (!f) return NULL;
    hid_t fapl = core_fapl();
    char name[64];
    snprintf(name, sizeof name, "nncc-kh5-image-%p", (void *)f);
    if (fapl < 0 || H5Pset_file_image(fapl, (void *)data, size) < 0 ||
        (f->file = H5Fopen(name, H5F_ACC_RDONLY, fapl)) < 0) {
        struct why w;
        kfail(f, NNCC_ERR_FORMAT, KH5_K_PLAIN, NULL, NULL, "cannot open the HDF5 file%s",
              h5why(&w));
        if (fapl >= 0) H5Pclose(fapl);
        f->estatus = nncc_last_status();
        return f; /* with f->file < 0: the caller sends the error */
    }
    H5Pclose(fapl);
    return f;
}

/* A read-only file: checked to be HDF5, then read whole by a child process
 * (keras_h5_tree.c); `data` is not kept. */
static struct kh5 *open_tree(const void *data, size_t size, const char *label)
{
    if (!data || !has_signature(data, size))
        return NNCC_FAIL_NULL(NNCC_ERR_FORMAT, "'%s': not an HDF5 file", label);
    struct kh5 *f = kh5_new(label);
    if (!f) return NULL;
    if (!(f->tree = kh5_tree_load(data, size, f->label))) {
        kh5_free(f);
        return NULL;
    }
    return f;
}

struct kh5 *kh5_open_image(const void *data, size_t size, const char *label)
{
    return open_tree(data, size, label ? label : "(memory)");
}

/* Files larger than this are refused (they are read into memory whole). */
#define KH5_MAX_FILE ((uint64_t)4 << 30)

struct kh5 *kh5_open(const char *path, const char *label)
{
    if (!path) return NNCC_FAIL_NULL(NNCC_ERR_ARG, "kh5_open: no path given");
    if (!label) label = path;
    /* Refuse FIFOs and devices before reading anything. */
    struct stat st;
    const char *why = NULL;
    int fd = io_open_regular(path, &st, &why);
    if (fd < 0)
        return NNCC_FAIL_NULL(NNCC_ERR_IO, "'%s': %s", label, why ? why : strerror(errno));
    if ((uint64_t)st.st_size > KH5_MAX_FILE) {
        close(fd);
        return NNCC_FAIL_NULL(NNCC_ERR_UNSUPPORTED, "'%s': a file of %lld bytes (at most %llu)",
                              label, (long long)st.st_size, (unsigned long long)KH5_MAX_FILE);
    }
    size_t size = (size_t)st.st_size, got = 0;
    unsigned char *buf = malloc(size ? size : 1);
    if (!buf) {
        close(fd);
        return NNCC_FAIL_NULL(NNCC_ERR_NOMEM, "'%s': out of memory for a file of %zu bytes",
                              label, size);
    }
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            int e = errno;
            close(fd);
            free(buf);
            return NNCC_FAIL_NULL(NNCC_ERR_IO, "'%s': cannot read: %s", label, strerror(e));
        }
        if (r == 0) break; /* shrunk meanwhile: what is there */
        got += (size_t)r;
    }
    close(fd);
    struct kh5 *f = open_tree(buf, got, label);
    free(buf);
    return f;
}

struct kh5 *kh5_create(const char *label)
{
    struct h5quiet q;
    quiet_begin(&q);
    struct kh5 *f = kh5_new(label ? label : "(new HDF5 file)");
    if (f) {
        hid_t fapl = core_fapl();
        char name[64];
        snprintf(name, sizeof name, "nncc-kh5-new-%p", (void *)f);
        f->file = fapl < 0 ? -1 : H5Fcreate(name, H5F_ACC_EXCL, H5P_DEFAULT, fapl);
        if (f->file < 0) {
            struct why w;
            nncc_fail(NNCC_ERR_IO, "'%s': cannot create an HDF5 file in memory%s", f->label,
                      h5why(&w));
            kh5_free(f);
            f = NULL;
        } else {
            f->writable = true;
        }
        if (fapl >= 0) H5Pclose(fapl);
    }
    quiet_end(&q);
    return f;
}

enum nncc_status kh5_image(struct kh5 *f, void **data, size_t *size)
{
    *data = NULL;
    *size = 0;
    if (!f->writable)
        return nncc_fail(NNCC_ERR_ARG, "'%s': kh5_image: not a file made by kh5_create", LBL(f));
    struct h5quiet q;
    quiet_begin(&q);
    enum nncc_status st = NNCC_OK;
    struct why w;
    ssize_t n = H5Fflush(f->file, H5F_SCOPE_GLOBAL) < 0 ? -1
                                                       : H5Fget_file_image(f->file, NULL, 0);
    void *buf = n > 0 ? malloc((size_t)n) : NULL;
    if (n <= 0) {
        st = nncc_fail(NNCC_ERR_IO, "'%s': cannot make the HDF5 file's image%s", LBL(f),
                       h5why(&w));
    } else if (!buf) {
        st = nncc_fail(NNCC_ERR_NOMEM, "'%s': out of memory for an image of %zd bytes", LBL(f),
                       n);
    } else if (H5Fget_file_image(f->file, buf, (size_t)n) != n) {
        free(buf);
        st = nncc_fail(NNCC_ERR_IO, "'%s': cannot copy the HDF5 file's image%s", LBL(f),
                       h5why(&w));
    } else {
        *data = buf;
        *size = (size_t)n;
    }
    quiet_end(&q);
    return st;
}

void kh5_close(struct kh5 *f)
{
    if (!f) return;
    struct h5quiet q;
    quiet_begin(&q);
    kh5_free(f);
    quiet_end(&q);
}

const char *kh5_label(const struct kh5 *f) { return f->label; }

/* ---- Reading ---- */

bool kh5_is_group(struct kh5 *f, const char *path)
{
    if (f->tree) return kh5t_is_group(f->tree, LBL(f), path);
    struct h5quiet q;
    quiet_begin(&q);
    bool r = obj_type(f, path) == H5I_GROUP;
    quiet_end(&q);
    return r;
}

bool kh5_is_dataset(struct kh5 *f, const char *path)
{
    if (f->tree) return kh5t_is_dataset(f->tree, LBL(f), path);
    struct h5quiet q;
    quiet_begin(&q);
    bool r = obj_type(f, path) == H5I_DATASET;
    quiet_end(&q);
    return r;
}

/* Opens attribute `name` of object `obj`, or -1 (with the error set when
 * `report`). */
static hid_t open_attr(struct kh5 *f, const char *obj, const char *name, bool report)
{
    if (!name) {
        if (report) nncc_fail(NNCC_ERR_ARG, "'%s': no attribute name given", LBL(f));
        return -1;
    }
    hid_t o = open_obj(f, obj, report);
    if (o < 0) return -1;
    htri_t ex = H5Aexists(o, name);
    hid_t a = ex > 0 ? H5Aopen(o, name, H5P_DEFAULT) : -1;
    if (a < 0 && report) {
        struct why w;
        if (ex == 0)
            nncc_fail(NNCC_ERR_FORMAT, "'%s': object '%s' has no attribute '%s'", LBL(f), obj,
                      name);
        else
            kfail(f, NNCC_ERR_FORMAT, KH5_K_READ_ATTR, obj, name, "%s", h5why(&w));
    }
    H5Oclose(o);
    return a;
}

bool kh5_has_attr(struct kh5 *f, const char *obj, const char *name)
{
    if (f->tree) return kh5t_has_attr(f->tree, LBL(f), obj, name);
    struct h5quiet q;
    quiet_begin(&q);
    hid_t o = name ? open_obj(f, obj, false) : -1;
    bool r = o >= 0 && H5Aexists(o, name) > 0;
    if (o >= 0) H5Oclose(o);
    quiet_end(&q);
    return r;
}

/* A fixed-length string's bytes, cut as its padding says. */
static char *fixed_string(const char *p, size_t size, H5T_str_t pad)
{
    size_t len = size;
    if (pad == H5T_STR_SPACEPAD) {
        while (len > 0 && p[len - 1] == ' ') len--;
    } else {
        const char *z = memchr(p, 0, size);
        if (z) len = (size_t)(z - p);
    }
    char *s = malloc(len + 1);
    if (!s) return NULL;
    memcpy(s, p, len);
    s[len] = 0;
    return s;
}

/* Reads the `count` strings of attribute a (a string type) into out[]:
 * malloc'd, NUL-terminated.  Checks every size first. */
static enum nncc_status read_strings(struct kh5 *f, const char *obj, const char *name, hid_t a,
                                     hid_t ftype, hid_t space, int64_t count, char **out)
{
    struct why w;
    enum nncc_status st = NNCC_OK;
    htri_t var = H5Tis_variable_str(ftype);
    H5T_cset_t cset = H5Tget_cset(ftype);
    hid_t mtype = H5Tcopy(H5T_C_S1);
    if (var < 0 || cset < 0 || mtype < 0 || H5Tset_cset(mtype, cset) < 0) {
        st = kfail(f, NNCC_ERR_FORMAT, KH5_K_ATTR, obj, name, ": unreadable string type%s",
                   h5why(&w));
        goto done;
    }
    if (var) {
        char **p = calloc((size_t)count, sizeof *p);
        if (!p) {
            st = kfail(f, NNCC_ERR_NOMEM, KH5_K_PLAIN, NULL, NULL, "out of memory");
            goto done;
        }
        if (H5Tset_size(mtype, H5T_VARIABLE) < 0 || H5Aread(a, mtype, p) < 0) {
            free(p);
            st = kfail(f, NNCC_ERR_FORMAT, KH5_K_READ_ATTR, obj, name, "%s", h5why(&w));
            goto done;
        }
        size_t total = 0;
        for (int64_t i = 0; i < count && st == NNCC_OK; i++) {
            size_t len = p[i] ? strlen(p[i]) : 0;
            total += len;
            if (total > KH5_MAX_STRING)
                st = kfail(f, NNCC_ERR_FORMAT, KH5_K_ATTR, obj, name,
                           ": more than %zu bytes of strings", KH5_MAX_STRING);
            else if (!(out[i] = strdup(p[i] ? p[i] : "")))
                st = kfail(f, NNCC_ERR_NOMEM, KH5_K_PLAIN, NULL, NULL, "out of memory");
        }
        H5Dvlen_reclaim(mtype, space, H5P_DEFAULT, p);
        free(p);
    } else {
        size_t size = H5Tget_size(ftype);
        H5T_str_t pad = H5Tget_strpad(ftype);
        if (size == 0 || size > KH5_MAX_STRING || (size_t)count > KH5_MAX_STRING / size) {
            st = kfail(f, NNCC_ERR_FORMAT, KH5_K_ATTR, obj, name,
                       ": %lld strings of %zu bytes (at most %zu bytes)", (long long)count, size,
                       KH5_MAX_STRING);
            goto done;
        }
        char *buf = malloc(size * (size_t)count);
        if (!buf) {
            st = kfail(f, NNCC_ERR_NOMEM, KH5_K_PLAIN, NULL, NULL, "out of memory");
            goto done;
        }
        if (H5Tset_size(mtype, size) < 0 || H5Tset_strpad(mtype, pad) < 0 ||
            H5Aread(a, mtype, buf) < 0) {
            st = kfail(f, NNCC_ERR_FORMAT, KH5_K_READ_ATTR, obj, name, "%s", h5why(&w));
        }
        for (int64_t i = 0; i < count && st == NNCC_OK; i++)
            if (!(out[i] = fixed_string(buf + (size_t)i * size, size, pad)))
                st = kfail(f, NNCC_ERR_NOMEM, KH5_K_PLAIN, NULL, NULL, "out of memory");
        free(buf);
    }
done:
    if (mtype >= 0) H5Tclose(mtype);
    return st;
}

/* Opens attribute obj/name and describes it: its type, class, dataspace
 * and element count (checked <= KH5_MAX_CHILDREN); rank -1 for a scalar. */
struct attr_info {
    hid_t a, type, space;
    H5T_class_t cls;
    int rank;
    int64_t count;
};

static void attr_close(struct attr_info *ai)
{
    if (ai->space >= 0) H5Sclose(ai->space);
    if (ai->type >= 0) H5Tclose(ai->type);
    if (ai->a >= 0) H5Aclose(ai->a);
}

static enum nncc_status attr_open(struct kh5 *f, const char *obj, const char *name,
                                  struct attr_info *ai)
{
    ai->type = ai->space = -1;
    ai->a = open_attr(f, obj, name, true);
    if (ai->a < 0) return nncc_last_status();
    struct why w;
    ai->type = H5Aget_type(ai->a);
    ai->space = H5Aget_space(ai->a);
    if (ai->type < 0 || ai->space < 0) {
        attr_close(ai);
        return kfail(f, NNCC_ERR_FORMAT, KH5_K_ATTR, obj, name, ": unreadable%s", h5why(&w));
    }
    ai->cls = H5Tget_class(ai->type);
    H5S_class_t sc = H5Sget_simple_extent_type(ai->space);
    hssize_t np = H5Sget_simple_extent_npoints(ai->space);
    ai->rank = sc == H5S_SCALAR ? -1 : H5Sget_simple_extent_ndims(ai->space);
    if ((sc != H5S_SCALAR && sc != H5S_SIMPLE) || np < 0 || np > KH5_MAX_CHILDREN) {
        attr_close(ai);
        return kfail(f, NNCC_ERR_FORMAT, KH5_K_ATTR, obj, name, ": %s (at most %d elements)",
                     sc == H5S_NULL ? "a null dataspace, no value" : "too many elements",
                         KH5_MAX_CHILDREN);
    }
    ai->count = (int64_t)np;
    return NNCC_OK;
}

static char *attr_string(struct kh5 *f, const char *obj, const char *name)
{
    struct attr_info ai;
    if (attr_open(f, obj, name, &ai) != NNCC_OK) return NULL;
    char *s = NULL;
    if (ai.cls != H5T_STRING || ai.count != 1) {
        nncc_fail(NNCC_ERR_FORMAT,
                  "'%s': attribute '%s' of '%s' is not a string (%s of %lld elements)", LBL(f),
                  name, obj, ai.cls == H5T_STRING ? "strings" : "a non-string type",
                  (long long)ai.count);
    } else {
        read_strings(f, obj, name, ai.a, ai.type, ai.space, 1, &s);
    }
    attr_close(&ai);
    return s;
}

char *kh5_attr_string(struct kh5 *f, const char *obj, const char *name)
{
    if (f->tree) return kh5t_attr_string(f->tree, LBL(f), obj, name);
    struct h5quiet q;
    quiet_begin(&q);
    char *s = attr_string(f, obj, name);
    quiet_end(&q);
    return s;
}

void kh5_strings_free(char **s, int n)
{
    if (!s) return;
    for (int i = 0; i < n; i++) free(s[i]);
    free(s);
}

static int attr_strings(struct kh5 *f, const char *obj, const char *name, char ***out)
{
    struct attr_info ai;
    if (attr_open(f, obj, name, &ai) != NNCC_OK) return -1;
    int n = -1;
    if ((ai.cls == H5T_FLOAT || ai.cls == H5T_INTEGER) && ai.count == 0 && ai.rank == 1) {
        /* h5py writes an empty list as an empty float64 array. */
        *out = calloc(1, sizeof **out);
        n = *out ? 0 : -1;
        if (!*out) kfail(f, NNCC_ERR_NOMEM, KH5_K_PLAIN, NULL, NULL, "out of memory");
    } else if (ai.cls != H5T_STRING || ai.rank != 1) {
        nncc_fail(NNCC_ERR_FORMAT, "'%s': attribute '%s' of '%s' is not a list of strings (%s)",
                  LBL(f), name, obj,
                  ai.cls != H5T_STRING ? "not a string type"
                  : ai.rank < 0        ? "a single string"
                                       : "a multi-dimensional array");
    } else {
        char **s = calloc((size_t)ai.count + 1, sizeof *s);
        if (!s) {
            kfail(f, NNCC_ERR_NOMEM, KH5_K_PLAIN, NULL, NULL, "out of memory");
        } else if (read_strings(f, obj, name, ai.a, ai.type, ai.space, ai.count, s) != NNCC_OK) {
            kh5_strings_free(s, (int)ai.count);
        } else {
            *out = s;
            n = (int)ai.count;
        }
    }
    attr_close(&ai);
    return n;
}

int kh5_attr_strings(struct kh5 *f, const char *obj, const char *name, char ***out)
{
    *out = NULL;
    if (f->tree) return kh5t_attr_strings(f->tree, LBL(f), obj, name, out);
    struct h5quiet q;
    quiet_begin(&q);
    int n = attr_strings(f, obj, name, out);
    quiet_end(&q);
    return n;
}

struct names {
    char **v;
    int n, cap;
    bool nomem, too_many;
};

static herr_t collect_name(hid_t g, const char *name, const H5L_info_t *info, void *data)
{
    (void)g;
    (void)info;
    struct names *c = data;
    if (c->n >= KH5_MAX_CHILDREN) {
        c->too_many = true;
        return 1;
    }
    if (c->n == c->cap) {
        int cap = c->cap ? c->cap * 2 : 16;
        char **v = realloc(c->v, (size_t)cap * sizeof *v);
        if (!v) {
            c->nomem = true;
            return 1;
        }
        c->v = v;
        c->cap = cap;
    }
    if (!(c->v[c->n] = strdup(name))) {
        c->nomem = true;
        return 1;
    }
    c->n++;
    return 0;
}

static int children(struct kh5 *f, const char *group, char ***out)
{
    hid_t g = open_obj(f, group, true);
    if (g < 0) return -1;
    struct why w;
    if (H5Iget_type(g) != H5I_GROUP) {
        H5Oclose(g);
        nncc_fail(NNCC_ERR_FORMAT, "'%s': '%s' is not a group", LBL(f), group);
        return -1;
    }
    struct names c = {0};
    hsize_t idx = 0;
    herr_t r = H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, &idx, collect_name, &c);
    H5Oclose(g);
    if (r < 0 || c.nomem || c.too_many) {
        kh5_strings_free(c.v, c.n);
        if (c.nomem) kfail(f, NNCC_ERR_NOMEM, KH5_K_PLAIN, NULL, NULL, "out of memory");
        else if (c.too_many)
            kfail(f, NNCC_ERR_FORMAT, KH5_K_GROUP, group, NULL, " has more than %d members",
                  KH5_MAX_CHILDREN);
        else
            kfail(f, NNCC_ERR_FORMAT, KH5_K_LIST, group, NULL, "%s", h5why(&w));
        return -1;
    }
    if (!c.v && !(c.v = calloc(1, sizeof *c.v))) {
        kfail(f, NNCC_ERR_NOMEM, KH5_K_PLAIN, NULL, NULL, "out of memory");
        return -1;
    }
    *out = c.v;
    return c.n;
}

int kh5_children(struct kh5 *f, const char *group, char ***out)
{
    *out = NULL;
    if (f->tree) return kh5t_children(f->tree, LBL(f), group, out);
    struct h5quiet q;
    quiet_begin(&q);
    int n = children(f, group, out);
    quiet_end(&q);
    return n;
}

enum nncc_status kh5_shape(struct kh5 *f, const char *path, struct nncc_shape *shape)
{
    if (f->tree) return kh5t_shape(f->tree, LBL(f), path, shape);
    struct h5quiet q;
    quiet_begin(&q);
    int64_t n;
    hid_t d = open_dataset(f, path, shape, &n);
    enum nncc_status st = d < 0 ? nncc_last_status() : NNCC_OK;
    if (d >= 0) H5Dclose(d);
    quiet_end(&q);
    return st;
}

/* Reads the whole of dataset d, converted to mem_type, into dst. */
static enum nncc_status read_all(struct kh5 *f, const char *path, hid_t d, hid_t mem_type,
                                 void *dst)
{
    struct why w;
    if (H5Dread(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, dst) < 0)
        return kfail(f, NNCC_ERR_FORMAT, KH5_K_READ_DS, path, NULL, "%s", h5why(&w));
    return NNCC_OK;
}

static enum nncc_status read_f32(struct kh5 *f, const char *path, float *dst, int64_t n)
{
    struct nncc_shape shape;
    int64_t count;
    hid_t d = open_dataset(f, path, &shape, &count);
    if (d < 0) return nncc_last_status();
    H5T_class_t cls;
    enum nncc_status st = numeric_class(f, path, d, &cls);
    if (st == NNCC_OK && n != count)
        st = nncc_fail(NNCC_ERR_SHAPE,
                       "'%s': dataset '%s' holds %lld values, %lld were expected", LBL(f), path,
                       (long long)count, (long long)n);
    if (st == NNCC_OK && n > 0) st = read_all(f, path, d, H5T_NATIVE_FLOAT, dst);
    H5Dclose(d);
    return st;
}

enum nncc_status kh5_read_f32(struct kh5 *f, const char *path, float *dst, int64_t n)
{
    if (f->tree) return kh5t_read_f32(f->tree, LBL(f), path, dst, n);
    struct h5quiet q;
    quiet_begin(&q);
    enum nncc_status st = read_f32(f, path, dst, n);
    quiet_end(&q);
    return st;
}

/* One value of a one-element numeric dataset, as double and (when it is an
 * integer type, exactly) as int64. */
static enum nncc_status read_scalar(struct kh5 *f, const char *path, double *dv, int64_t *iv,
                                    bool *is_int)
{
    struct nncc_shape shape;
    int64_t count;
    hid_t d = open_dataset(f, path, &shape, &count);
    if (d < 0) return nncc_last_status();
    H5T_class_t cls;
    enum nncc_status st = numeric_class(f, path, d, &cls);
    if (st == NNCC_OK && count != 1)
        st = nncc_fail(NNCC_ERR_FORMAT, "'%s': dataset '%s' holds %lld values, not one", LBL(f),
                       path, (long long)count);
    *is_int = cls == H5T_INTEGER;
    if (st == NNCC_OK && *is_int) {
        st = read_all(f, path, d, H5T_NATIVE_INT64, iv);
        *dv = (double)*iv;
    } else if (st == NNCC_OK) {
        st = read_all(f, path, d, H5T_NATIVE_DOUBLE, dv);
    }
    H5Dclose(d);
    return st;
}

enum nncc_status kh5_read_i64(struct kh5 *f, const char *path, int64_t *v)
{
    struct h5quiet q;
    quiet_begin(&q);
    double dv = 0;
    int64_t iv = 0;
    bool is_int = false;
    enum nncc_status st = f->tree ? kh5t_read_scalar(f->tree, LBL(f), path, &dv, &iv, &is_int)
                                  : read_scalar(f, path, &dv, &iv, &is_int);
    if (st == NNCC_OK && !is_int) {
        /* A float holding an integer (a float iteration count) is fine. */
        if (!(dv >= -9.2e18 && dv <= 9.2e18) || dv != (double)(int64_t)dv)
            st = nncc_fail(NNCC_ERR_FORMAT, "'%s': dataset '%s' holds %g, not an integer",
                           LBL(f), path, dv);
        else
            iv = (int64_t)dv;
    }
    if (st == NNCC_OK) *v = iv;
    quiet_end(&q);
    return st;
}

enum nncc_status kh5_read_f64(struct kh5 *f, const char *path, double *v)
{
    struct h5quiet q;
    quiet_begin(&q);
    double dv = 0;
    int64_t iv = 0;
    bool is_int = false;
    enum nncc_status st = f->tree ? kh5t_read_scalar(f->tree, LBL(f), path, &dv, &iv, &is_int)
                                  : read_scalar(f, path, &dv, &iv, &is_int);
    if (st == NNCC_OK) *v = dv;
    quiet_end(&q);
    return st;
}

/* ---- Writing ---- */

static enum nncc_status check_writable(struct kh5 *f, const char *what, const char *path)
{
    if (!f->writable)
        return nncc_fail(NNCC_ERR_ARG, "'%s': %s '%s': the file is open read-only", LBL(f), what,
                         path ? path : "");
    return check_path(f, path);
}

/* A link creation list that makes missing parent groups. */
static hid_t parents_lcpl(void)
{
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    if (lcpl >= 0 && H5Pset_create_intermediate_group(lcpl, 1) < 0) {
        H5Pclose(lcpl);
        return -1;
    }
    return lcpl;
}

static enum nncc_status make_group(struct kh5 *f, const char *path)
{
    enum nncc_status st = check_writable(f, "group", path);
    if (st != NNCC_OK) return st;
    H5I_type_t t = obj_type(f, path);
    if (t == H5I_GROUP) return NNCC_OK;
    if (t != H5I_BADID)
        return nncc_fail(NNCC_ERR_ARG, "'%s': '%s' exists and is not a group", LBL(f), path);
    struct why w;
    hid_t lcpl = parents_lcpl();
    hid_t g = lcpl < 0 ? -1 : H5Gcreate2(f->file, path, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    if (lcpl >= 0) H5Pclose(lcpl);
    if (g < 0)
        return nncc_fail(NNCC_ERR_IO, "'%s': cannot make group '%s'%s", LBL(f), path, h5why(&w));
    H5Gclose(g);
    return NNCC_OK;
}

enum nncc_status kh5_group(struct kh5 *f, const char *path)
{
    struct h5quiet q;
    quiet_begin(&q);
    enum nncc_status st = make_group(f, path);
    quiet_end(&q);
    return st;
}

/* Writes attribute obj/name of the given type and dataspace from buf,
 * replacing an attribute of that name. */
static enum nncc_status write_attr(struct kh5 *f, const char *obj, const char *name, hid_t type,
                                   hid_t space, const void *buf)
{
    enum nncc_status st = check_writable(f, "attribute of", obj);
    if (st != NNCC_OK) return st;
    if (!name) return nncc_fail(NNCC_ERR_ARG, "'%s': no attribute name given", LBL(f));
    hid_t o = open_obj(f, obj, true);
    if (o < 0) return nncc_last_status();
    struct why w;
    hid_t a = -1;
    if ((H5Aexists(o, name) > 0 && H5Adelete(o, name) < 0) ||
        (a = H5Acreate2(o, name, type, space, H5P_DEFAULT, H5P_DEFAULT)) < 0 ||
        H5Awrite(a, type, buf) < 0)
        st = nncc_fail(NNCC_ERR_IO, "'%s': cannot write attribute '%s' of '%s'%s", LBL(f), name,
                       obj, h5why(&w));
    if (a >= 0) H5Aclose(a);
    H5Oclose(o);
    return st;
}

static hid_t utf8_vlen_type(void)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t >= 0 && (H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0)) {
        H5Tclose(t);
        return -1;
    }
    return t;
}

enum nncc_status kh5_set_attr_string(struct kh5 *f, const char *obj, const char *name,
                                     const char *value)
{
    struct h5quiet q;
    quiet_begin(&q);
    enum nncc_status st;
    hid_t t = utf8_vlen_type(), s = H5Screate(H5S_SCALAR);
    if (!value)
        st = nncc_fail(NNCC_ERR_ARG, "'%s': attribute '%s': no value", LBL(f), name ? name : "");
    else if (t < 0 || s < 0)
        st = nncc_fail(NNCC_ERR_NOMEM, "'%s': cannot make a string type", LBL(f));
    else
        st = write_attr(f, obj, name, t, s, &value);
    if (t >= 0) H5Tclose(t);
    if (s >= 0) H5Sclose(s);
    quiet_end(&q);
    return st;
}

enum nncc_status kh5_set_attr_strings(struct kh5 *f, const char *obj, const char *name,
                                      const char *const *values, int n)
{
    struct h5quiet q;
    quiet_begin(&q);
    enum nncc_status st = NNCC_OK;
    hsize_t dim = n > 0 ? (hsize_t)n : 0;
    hid_t t = n > 0 ? utf8_vlen_type() : H5Tcopy(H5T_IEEE_F64LE);
    hid_t s = H5Screate_simple(1, &dim, NULL);
    if (n < 0 || n > KH5_MAX_CHILDREN)
        st = nncc_fail(NNCC_ERR_ARG, "'%s': attribute '%s': %d strings (0 to %d)", LBL(f),
                       name ? name : "", n, KH5_MAX_CHILDREN);
    for (int i = 0; i < n && st == NNCC_OK; i++)
        if (!values[i])
            st = nncc_fail(NNCC_ERR_ARG, "'%s': attribute '%s': string %d is NULL", LBL(f),
                           name ? name : "", i);
    if (st == NNCC_OK && (t < 0 || s < 0))
        st = nncc_fail(NNCC_ERR_NOMEM, "'%s': cannot make a string list type", LBL(f));
    if (st == NNCC_OK) {
        static const double none = 0;
        st = write_attr(f, obj, name, t, s, n > 0 ? (const void *)values : (const void *)&none);
    }
    if (t >= 0) H5Tclose(t);
    if (s >= 0) H5Sclose(s);
    quiet_end(&q);
    return st;
}

/* Writes a new dataset at path (parents made) of file type ftype. */
static enum nncc_status write_dataset(struct kh5 *f, const char *path, int rank,
                                      const hsize_t *dims, hid_t ftype, hid_t mtype,
                                      const void *data)
{
    enum nncc_status st = check_writable(f, "dataset", path);
    if (st != NNCC_OK) return st;
    if (obj_type(f, path) != H5I_BADID)
        return nncc_fail(NNCC_ERR_ARG, "'%s': dataset '%s' already exists", LBL(f), path);
    struct why w;
    hid_t s = rank == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(rank, dims, NULL);
    hid_t lcpl = parents_lcpl(), d = -1;
    if (s < 0 || lcpl < 0 ||
        (d = H5Dcreate2(f->file, path, ftype, s, lcpl, H5P_DEFAULT, H5P_DEFAULT)) < 0 ||
        H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
        st = nncc_fail(NNCC_ERR_IO, "'%s': cannot write dataset '%s'%s", LBL(f), path,
                       h5why(&w));
    if (d >= 0) H5Dclose(d);
    if (lcpl >= 0) H5Pclose(lcpl);
    if (s >= 0) H5Sclose(s);
    return st;
}

enum nncc_status kh5_write_f32(struct kh5 *f, const char *path, struct nncc_shape shape,
                               const float *data)
{
    struct h5quiet q;
    quiet_begin(&q);
    enum nncc_status st = NNCC_OK;
    hsize_t dims[NNCC_MAX_RANK];
    if (shape.rank < 0 || shape.rank > NNCC_MAX_RANK)
        st = nncc_fail(NNCC_ERR_ARG, "'%s': dataset '%s': rank %d", LBL(f), path ? path : "",
                       shape.rank);
    for (int i = 0; st == NNCC_OK && i < shape.rank; i++) {
        if (shape.dim[i] < 0)
            st = nncc_fail(NNCC_ERR_ARG, "'%s': dataset '%s': dimension %d is %lld", LBL(f),
                           path ? path : "", i, (long long)shape.dim[i]);
        dims[i] = (hsize_t)shape.dim[i];
    }
    if (st == NNCC_OK)
        st = write_dataset(f, path, shape.rank, dims, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, data);
    quiet_end(&q);
    return st;
}

enum nncc_status kh5_write_i64(struct kh5 *f, const char *path, int64_t v)
{
    struct h5quiet q;
    quiet_begin(&q);
    enum nncc_status st = write_dataset(f, path, 0, NULL, H5T_STD_I64LE, H5T_NATIVE_INT64, &v);
    quiet_end(&q);
    return st;
}

/* ---- The child's walk of a read-only file (keras_h5_tree.h) ---- */

struct walk {
    struct kh5 *f;
    struct kh5_out *o;
    long objects;
    uint64_t values_left; /* bytes of float32 values still sent */
    bool fatal;
};

/* Before a call whose failure is sent: forget the last failure's kind. */
static void reset_err(struct kh5 *f) { f->ekind = -1; }

/* Sends the last failure: its kind and tail when kfail made it, else the
 * message after "'LABEL': " as a plain one. */
static void put_last_err(struct walk *w)
{
    struct kh5 *f = w->f;
    if (f->ekind >= 0) {
        kh5_put_err(w->o, f->estatus, f->ekind, f->etail);
        return;
    }
    const char *m = nncc_last_error();
    size_t ll = strlen(f->label);
    if (m[0] == '\'' && !strncmp(m + 1, f->label, ll) && !strncmp(m + 1 + ll, "': ", 3))
        m += ll + 4;
    enum nncc_status st = nncc_last_status();
    kh5_put_err(w->o, st == NNCC_OK ? NNCC_ERR_FORMAT : st, KH5_K_PLAIN, m);
}

static herr_t collect_attr(hid_t o, const char *name, const H5A_info_t *info, void *data)
{
    (void)info;
    return collect_name(o, name, NULL, data);
}

/* Every attribute of the object at path (open as obj): each as attr_open
 * describes it, and its strings when kh5_attr_string or kh5_attr_strings
 * would read them. */
static void walk_attrs(struct walk *w, const char *path, hid_t obj)
{
    struct kh5 *f = w->f;
    struct kh5_out *o = w->o;
    struct names c = {0};
    hsize_t idx = 0;
    struct why wy;
    herr_t r = H5Aiterate2(obj, H5_INDEX_NAME, H5_ITER_NATIVE, &idx, collect_attr, &c);
    if (r < 0 || c.nomem || c.too_many) {
        kh5_put_u8(o, 1);
        if (c.nomem) kh5_put_err(o, NNCC_ERR_NOMEM, KH5_K_PLAIN, "out of memory");
        else if (c.too_many)
            kh5_put_err(o, NNCC_ERR_FORMAT, KH5_K_READ_ATTR, " (too many attributes)");
        else kh5_put_err(o, NNCC_ERR_FORMAT, KH5_K_READ_ATTR, h5why(&wy));
        kh5_strings_free(c.v, c.n);
        return;
    }
    kh5_put_u8(o, 0);
    kh5_put_u32(o, (uint32_t)c.n);
    for (int i = 0; i < c.n; i++) {
        kh5_put_str(o, c.v[i]);
        reset_err(f);
        struct attr_info ai;
        if (attr_open(f, path, c.v[i], &ai) != NNCC_OK) {
            kh5_put_u8(o, 1);
            put_last_err(w);
            continue;
        }
        kh5_put_u8(o, 0);
        kh5_put_u32(o, (uint32_t)ai.cls);
        kh5_put_u32(o, (uint32_t)ai.rank);
        kh5_put_i64(o, ai.count);
        if (ai.cls != H5T_STRING || (ai.count != 1 && ai.rank != 1)) {
            kh5_put_u8(o, 0);
        } else {
            char **s = calloc((size_t)ai.count + 1, sizeof *s);
            reset_err(f);
            if (!s) {
                kh5_put_u8(o, 2);
                kh5_put_err(o, NNCC_ERR_NOMEM, KH5_K_PLAIN, "out of memory");
            } else if (read_strings(f, path, c.v[i], ai.a, ai.type, ai.space, ai.count, s) !=
                       NNCC_OK) {
                kh5_put_u8(o, 2);
                put_last_err(w);
            } else {
                kh5_put_u8(o, 1);
                kh5_put_u32(o, (uint32_t)ai.count);
                for (int64_t k = 0; k < ai.count; k++) kh5_put_str(o, s[k]);
            }
            kh5_strings_free(s, (int)ai.count);
        }
        attr_close(&ai);
    }
    kh5_strings_free(c.v, c.n);
}

/* A dataset: as open_dataset and numeric_class judge it, its values as
 * float32, and a one-element one's value as read_scalar reads it. */
static void walk_dataset(struct walk *w, const char *path)
{
    struct kh5 *f = w->f;
    struct kh5_out *o = w->o;
    struct nncc_shape shape;
    int64_t count;
    reset_err(f);
    hid_t d = open_dataset(f, path, &shape, &count);
    if (d < 0) {
        kh5_put_u8(o, 1);
        put_last_err(w);
        return;
    }
    kh5_put_u8(o, 0);
    kh5_put_u32(o, (uint32_t)shape.rank);
    for (int i = 0; i < shape.rank; i++) kh5_put_i64(o, shape.dim[i]);
    kh5_put_i64(o, count);
    H5T_class_t cls;
    reset_err(f);
    if (numeric_class(f, path, d, &cls) != NNCC_OK) {
        kh5_put_u8(o, 1);
        put_last_err(w);
        H5Dclose(d);
        return;
    }
    kh5_put_u8(o, 0);
    /* The values.  A file stores at least one byte per value unless it
     * is compressed or never written (fill values): past 4 bytes per byte
     * of file plus 64 MiB, a dataset's values are refused, not sent. */
    if (count == 0) {
        kh5_put_u8(o, 0);
    } else if ((uint64_t)count * 4 > w->values_left) {
        kh5_put_u8(o, 2);
        char tail[160];
        snprintf(tail, sizeof tail,
                 ": %lld values, more than nncc reads from a file of this size (refused)",
                 (long long)count);
        kh5_put_err(o, NNCC_ERR_FORMAT, KH5_K_DS, tail);
    } else {
        float *v = malloc((size_t)count * sizeof *v);
        reset_err(f);
        if (!v) {
            kh5_put_u8(o, 2);
            kh5_put_err(o, NNCC_ERR_NOMEM, KH5_K_PLAIN, "out of memory");
        } else if (read_all(f, path, d, H5T_NATIVE_FLOAT, v) != NNCC_OK) {
            kh5_put_u8(o, 2);
            put_last_err(w);
        } else {
            kh5_put_u8(o, 1);
            kh5_put(o, v, (size_t)count * sizeof *v);
            w->values_left -= (uint64_t)count * 4;
        }
        free(v);
    }
    if (count != 1) {
        kh5_put_u8(o, 0);
    } else {
        bool is_int = cls == H5T_INTEGER;
        double dv = 0;
        int64_t iv = 0;
        reset_err(f);
        enum nncc_status st = is_int ? read_all(f, path, d, H5T_NATIVE_INT64, &iv)
                                     : read_all(f, path, d, H5T_NATIVE_DOUBLE, &dv);
        if (is_int) dv = (double)iv;
        if (st != NNCC_OK) {
            kh5_put_u8(o, 2);
            put_last_err(w);
        } else {
            kh5_put_u8(o, 1);
            kh5_put_u8(o, is_int);
            kh5_put_i64(o, iv);
            kh5_put(o, &dv, sizeof dv);
        }
    }
    H5Dclose(d);
}

static void walk_node(struct walk *w, const char *path, int depth);

/* A group's members in name order, with their link types; hard links
 * walked. */
static void walk_group(struct walk *w, const char *path, hid_t g, int depth)
{
    struct kh5 *f = w->f;
    struct kh5_out *o = w->o;
    char **names = NULL;
    reset_err(f);
    int n = children(f, path, &names);
    if (n < 0) {
        kh5_put_u8(o, 1);
        put_last_err(w);
        return;
    }
    kh5_put_u8(o, 0);
    kh5_put_u32(o, (uint32_t)n);
    size_t plen = strlen(path);
    for (int i = 0; i < n && !w->fatal; i++) {
        kh5_put_str(o, names[i]);
        H5L_info_t li;
        int lt = H5Lget_info(g, names[i], &li, H5P_DEFAULT) < 0 ? KH5T_UNKNOWN
                 : li.type == H5L_TYPE_HARD                     ? KH5T_HARD
                 : li.type == H5L_TYPE_SOFT                     ? KH5T_SOFT
                 : li.type == H5L_TYPE_EXTERNAL                 ? KH5T_EXTERNAL
                                                                : KH5T_UD;
        kh5_put_u8(o, (unsigned)lt);
        if (lt != KH5T_HARD) continue;
        size_t nl = strlen(names[i]);
        char *child = malloc(plen + nl + 2);
        /* Too deep, or a path nobody can ask for (check_path): not walked. */
        if (!child || depth + 1 > KH5_MAX_DEPTH || plen + 1 + nl > KH5_MAX_PATH) {
            kh5_put_u8(o, KH5T_DEEP);
        } else {
            snprintf(child, plen + nl + 2, plen ? "%s/%s" : "%s%s", path, names[i]);
            walk_node(w, child, depth + 1);
        }
        free(child);
    }
    kh5_strings_free(names, n);
}

static void walk_node(struct walk *w, const char *path, int depth)
{
    struct kh5 *f = w->f;
    struct kh5_out *o = w->o;
    if (++w->objects > KH5_MAX_OBJECTS) {
        char tail[160];
        snprintf(tail, sizeof tail, "more than %d objects (or links that form a cycle)",
                 KH5_MAX_OBJECTS);
        kh5_put_u8(o, KH5T_FATAL);
        kh5_put_err(o, NNCC_ERR_FORMAT, KH5_K_PLAIN, tail);
        w->fatal = true;
        return;
    }
    reset_err(f);
    hid_t obj = open_obj(f, path, true);
    if (obj < 0) {
        /* The root unreadable: nothing of the file is. */
        kh5_put_u8(o, depth == 0 ? KH5T_FATAL : KH5T_BROKEN);
        put_last_err(w);
        w->fatal = depth == 0;
        return;
    }
    H5I_type_t t = H5Iget_type(obj);
    int type = t == H5I_GROUP ? KH5T_GROUP : t == H5I_DATASET ? KH5T_DATASET : KH5T_OTHER;
    kh5_put_u8(o, (unsigned)type);
    walk_attrs(w, path, obj);
    if (type == KH5T_GROUP) walk_group(w, path, obj, depth);
    else if (type == KH5T_DATASET) walk_dataset(w, path);
    H5Oclose(obj);
}

void kh5_child_walk(const void *data, size_t size, const char *label, struct kh5_out *o)
{
    struct h5quiet q;
    quiet_begin(&q);
    kh5_put(o, "KH5T", 4);
    kh5_put_u32(o, 1);
    struct kh5 *f = open_image_h5(data, size, label);
    if (!f) {
        kh5_put_u8(o, KH5T_FATAL);
        kh5_put_err(o, NNCC_ERR_NOMEM, KH5_K_PLAIN, "out of memory");
    } else if (f->file < 0) {
        kh5_put_u8(o, KH5T_FATAL);
        kh5_put_err(o, f->estatus, f->ekind, f->etail);
    } else {
        struct walk w = {.f = f, .o = o, .values_left = (uint64_t)size * 4 + ((uint64_t)64 << 20)};
        walk_node(&w, "", 0);
    }
    kh5_put_u32(o, 0x21444e45); /* "END!" */
    /* The child exits without closing anything: the process ends. */
}
