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
 * Known limits of libhdf5 1.10.8 on hostile files, which nothing above can
 * check first (found by tests/fuzz/fuzz_keras.c): reading a variable-length
 * string (H5Aread -> H5T__conv_vlen) allocates the length the file declares,
 * up to 4 GiB, before reading it, and its global heap parsing (H5HG_read)
 * can hang, overlap memcpy ranges or crash; H5Aexists and H5Literate can
 * read out of bounds on a corrupt object header or symbol table.  Such
 * files can crash or exhaust the process: libhdf5's, not this file's, to
 * fix.
 */
#include "runtime/io/keras_h5.h"

#include <errno.h>
#include <hdf5.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ir/error.h"
#include "runtime/io/open_regular.h"

/* The longest object path accepted (a Keras path is a few hundred bytes). */
#define KH5_MAX_PATH 4096
/* Deflate inflates at most ~1032:1: a chunked dataset declaring more than
 * this many times the bytes it stores is refused before anyone allocates. */
#define KH5_MAX_RATIO 1100

struct kh5 {
    hid_t file;
    char *label;
    bool writable;
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
                nncc_fail(NNCC_ERR_FORMAT, "'%s': cannot open object '%s'%s", LBL(f), path,
                          h5why(&w));
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
        st = nncc_fail(NNCC_ERR_FORMAT, "'%s': dataset '%s': unreadable header%s", LBL(f), path,
                       h5why(&w));
        goto done;
    }
    H5S_class_t sc = H5Sget_simple_extent_type(space);
    int rank = H5Sget_simple_extent_ndims(space);
    if ((sc != H5S_SCALAR && sc != H5S_SIMPLE) || rank < 0 || rank > NNCC_MAX_RANK) {
        st = nncc_fail(NNCC_ERR_FORMAT, "'%s': dataset '%s': %s (at most rank %d)", LBL(f), path,
                       sc == H5S_NULL ? "a null dataspace, no data" : "unsupported dataspace",
                       NNCC_MAX_RANK);
        goto done;
    }
    hsize_t dims[NNCC_MAX_RANK];
    if (rank > 0 && H5Sget_simple_extent_dims(space, dims, NULL) != rank) {
        st = nncc_fail(NNCC_ERR_FORMAT, "'%s': dataset '%s': unreadable dimensions%s", LBL(f),
                       path, h5why(&w));
        goto done;
    }
    int64_t n = 1;
    shape->rank = rank;
    for (int i = 0; i < rank; i++) {
        if (dims[i] > (hsize_t)KH5_MAX_ELEMENTS ||
            (dims[i] > 0 && n > KH5_MAX_ELEMENTS / (int64_t)dims[i])) {
            st = nncc_fail(NNCC_ERR_FORMAT,
                           "'%s': dataset '%s': more than %lld elements (dimension %d is %llu)",
                           LBL(f), path, (long long)KH5_MAX_ELEMENTS, i,
                           (unsigned long long)dims[i]);
            goto done;
        }
        shape->dim[i] = (int64_t)dims[i];
        n *= (int64_t)dims[i];
    }
    for (int i = rank; i < NNCC_MAX_RANK; i++) shape->dim[i] = 0;
    *count = n;
    if (H5Pget_external_count(dcpl) != 0 || H5Pget_layout(dcpl) == H5D_VIRTUAL) {
        st = nncc_fail(NNCC_ERR_UNSUPPORTED,
                       "'%s': dataset '%s' keeps its data outside the file (refused)", LBL(f),
                       path);
        goto done;
    }
    size_t tsize = H5Tget_size(type);
    if (tsize == 0 || tsize > 64) {
        st = nncc_fail(NNCC_ERR_FORMAT, "'%s': dataset '%s': element size %zu", LBL(f), path,
                       tsize);
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
            st = nncc_fail(NNCC_ERR_FORMAT,
                           "'%s': dataset '%s' declares %llu bytes of data but the file stores "
                           "%llu (file of %llu bytes)",
                           LBL(f), path, (unsigned long long)need, (unsigned long long)stored,
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
            st = nncc_fail(NNCC_ERR_FORMAT,
                           "'%s': dataset '%s': chunks of %llu bytes for %llu bytes of data",
                           LBL(f), path, (unsigned long long)cn, (unsigned long long)need);
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
        return nncc_fail(NNCC_ERR_FORMAT,
                         "'%s': dataset '%s' is not numeric (HDF5 type class %d: %s)", LBL(f),
                         path, (int)*cls,
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

static struct kh5 *open_path(const char *path, const char *label)
{
    if (!path) return NNCC_FAIL_NULL(NNCC_ERR_ARG, "kh5_open: no path given");
    if (!label) label = path;
    /* Refuse FIFOs and devices before libhdf5 opens anything. */
    struct stat st;
    const char *why = NULL;
    int fd = io_open_regular(path, &st, &why);
    if (fd < 0)
        return NNCC_FAIL_NULL(NNCC_ERR_IO, "'%s': %s", label, why ? why : strerror(errno));
    close(fd);
    htri_t is = H5Fis_hdf5(path);
    if (is <= 0)
        return NNCC_FAIL_NULL(NNCC_ERR_FORMAT, "'%s': not an HDF5 file", label);
    struct kh5 *f = kh5_new(label);
    if (!f) return NULL;
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl >= 0) {
        H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG);
        /* Lock as h5py does, but a file system without locks (some network
         * ones) is no reason to refuse a read-only open. */
        H5Pset_file_locking(fapl, 1, 1);
    }
    f->file = H5Fopen(path, H5F_ACC_RDONLY, fapl >= 0 ? fapl : H5P_DEFAULT);
    if (f->file < 0) {
        /* The reason first: any later libhdf5 call clears its error stack. */
        struct why w;
        nncc_fail(NNCC_ERR_FORMAT, "'%s': cannot open the HDF5 file%s", label, h5why(&w));
        kh5_free(f);
        f = NULL;
    }
    if (fapl >= 0) H5Pclose(fapl);
    return f;
}

struct kh5 *kh5_open(const char *path, const char *label)
{
    struct h5quiet q;
    quiet_begin(&q);
    struct kh5 *f = open_path(path, label);
    quiet_end(&q);
    return f;
}

/* The HDF5 signature: at offset 0, 512, 1024, ... (a user block before it). */
static bool has_signature(const unsigned char *p, size_t size)
{
    static const unsigned char sig[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
    for (size_t off = 0; off + 8 <= size; off = off ? off * 2 : 512)
        if (!memcmp(p + off, sig, 8)) return true;
    return false;
}

static struct kh5 *open_image(const void *data, size_t size, const char *label)
{
    if (!label) label = "(memory)";
    if (!data || !has_signature(data, size))
        return NNCC_FAIL_NULL(NNCC_ERR_FORMAT, "'%s': not an HDF5 file", label);
    struct kh5 *f = kh5_new(label);
    if (!f) return NULL;
    hid_t fapl = core_fapl();
    char name[64];
    snprintf(name, sizeof name, "nncc-kh5-image-%p", (void *)f);
    if (fapl < 0 || H5Pset_file_image(fapl, (void *)data, size) < 0 ||
        (f->file = H5Fopen(name, H5F_ACC_RDONLY, fapl)) < 0) {
        struct why w;
        nncc_fail(NNCC_ERR_FORMAT, "'%s': cannot open the HDF5 file%s", label, h5why(&w));
        if (fapl >= 0) H5Pclose(fapl);
        kh5_free(f);
        return NULL;
    }
    H5Pclose(fapl);
    return f;
}

struct kh5 *kh5_open_image(const void *data, size_t size, const char *label)
{
    struct h5quiet q;
    quiet_begin(&q);
    struct kh5 *f = open_image(data, size, label);
    quiet_end(&q);
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
    struct h5quiet q;
    quiet_begin(&q);
    bool r = obj_type(f, path) == H5I_GROUP;
    quiet_end(&q);
    return r;
}

bool kh5_is_dataset(struct kh5 *f, const char *path)
{
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
            nncc_fail(NNCC_ERR_FORMAT, "'%s': cannot read attribute '%s' of '%s'%s", LBL(f), name,
                      obj, h5why(&w));
    }
    H5Oclose(o);
    return a;
}

bool kh5_has_attr(struct kh5 *f, const char *obj, const char *name)
{
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
        st = nncc_fail(NNCC_ERR_FORMAT, "'%s': attribute '%s' of '%s': unreadable string type%s",
                       LBL(f), name, obj, h5why(&w));
        goto done;
    }
    if (var) {
        char **p = calloc((size_t)count, sizeof *p);
        if (!p) {
            st = nncc_fail(NNCC_ERR_NOMEM, "'%s': out of memory", LBL(f));
            goto done;
        }
        if (H5Tset_size(mtype, H5T_VARIABLE) < 0 || H5Aread(a, mtype, p) < 0) {
            free(p);
            st = nncc_fail(NNCC_ERR_FORMAT, "'%s': cannot read attribute '%s' of '%s'%s", LBL(f),
                           name, obj, h5why(&w));
            goto done;
        }
        size_t total = 0;
        for (int64_t i = 0; i < count && st == NNCC_OK; i++) {
            size_t len = p[i] ? strlen(p[i]) : 0;
            total += len;
            if (total > KH5_MAX_STRING)
                st = nncc_fail(NNCC_ERR_FORMAT,
                               "'%s': attribute '%s' of '%s': more than %zu bytes of strings",
                               LBL(f), name, obj, KH5_MAX_STRING);
            else if (!(out[i] = strdup(p[i] ? p[i] : "")))
                st = nncc_fail(NNCC_ERR_NOMEM, "'%s': out of memory", LBL(f));
        }
        H5Dvlen_reclaim(mtype, space, H5P_DEFAULT, p);
        free(p);
    } else {
        size_t size = H5Tget_size(ftype);
        H5T_str_t pad = H5Tget_strpad(ftype);
        if (size == 0 || size > KH5_MAX_STRING || (size_t)count > KH5_MAX_STRING / size) {
            st = nncc_fail(NNCC_ERR_FORMAT,
                           "'%s': attribute '%s' of '%s': %lld strings of %zu bytes (at most "
                           "%zu bytes)",
                           LBL(f), name, obj, (long long)count, size, KH5_MAX_STRING);
            goto done;
        }
        char *buf = malloc(size * (size_t)count);
        if (!buf) {
            st = nncc_fail(NNCC_ERR_NOMEM, "'%s': out of memory", LBL(f));
            goto done;
        }
        if (H5Tset_size(mtype, size) < 0 || H5Tset_strpad(mtype, pad) < 0 ||
            H5Aread(a, mtype, buf) < 0) {
            st = nncc_fail(NNCC_ERR_FORMAT, "'%s': cannot read attribute '%s' of '%s'%s", LBL(f),
                           name, obj, h5why(&w));
        }
        for (int64_t i = 0; i < count && st == NNCC_OK; i++)
            if (!(out[i] = fixed_string(buf + (size_t)i * size, size, pad)))
                st = nncc_fail(NNCC_ERR_NOMEM, "'%s': out of memory", LBL(f));
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
        return nncc_fail(NNCC_ERR_FORMAT, "'%s': attribute '%s' of '%s': unreadable%s", LBL(f),
                         name, obj, h5why(&w));
    }
    ai->cls = H5Tget_class(ai->type);
    H5S_class_t sc = H5Sget_simple_extent_type(ai->space);
    hssize_t np = H5Sget_simple_extent_npoints(ai->space);
    ai->rank = sc == H5S_SCALAR ? -1 : H5Sget_simple_extent_ndims(ai->space);
    if ((sc != H5S_SCALAR && sc != H5S_SIMPLE) || np < 0 || np > KH5_MAX_CHILDREN) {
        attr_close(ai);
        return nncc_fail(NNCC_ERR_FORMAT,
                         "'%s': attribute '%s' of '%s': %s (at most %d elements)", LBL(f), name,
                         obj, sc == H5S_NULL ? "a null dataspace, no value" : "too many elements",
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
        if (!*out) nncc_fail(NNCC_ERR_NOMEM, "'%s': out of memory", LBL(f));
    } else if (ai.cls != H5T_STRING || ai.rank != 1) {
        nncc_fail(NNCC_ERR_FORMAT, "'%s': attribute '%s' of '%s' is not a list of strings (%s)",
                  LBL(f), name, obj,
                  ai.cls != H5T_STRING ? "not a string type"
                  : ai.rank < 0        ? "a single string"
                                       : "a multi-dimensional array");
    } else {
        char **s = calloc((size_t)ai.count + 1, sizeof *s);
        if (!s) {
            nncc_fail(NNCC_ERR_NOMEM, "'%s': out of memory", LBL(f));
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
        if (c.nomem) nncc_fail(NNCC_ERR_NOMEM, "'%s': out of memory", LBL(f));
        else if (c.too_many)
            nncc_fail(NNCC_ERR_FORMAT, "'%s': group '%s' has more than %d members", LBL(f), group,
                      KH5_MAX_CHILDREN);
        else
            nncc_fail(NNCC_ERR_FORMAT, "'%s': cannot list group '%s'%s", LBL(f), group,
                      h5why(&w));
        return -1;
    }
    if (!c.v && !(c.v = calloc(1, sizeof *c.v))) {
        nncc_fail(NNCC_ERR_NOMEM, "'%s': out of memory", LBL(f));
        return -1;
    }
    *out = c.v;
    return c.n;
}

int kh5_children(struct kh5 *f, const char *group, char ***out)
{
    *out = NULL;
    struct h5quiet q;
    quiet_begin(&q);
    int n = children(f, group, out);
    quiet_end(&q);
    return n;
}

enum nncc_status kh5_shape(struct kh5 *f, const char *path, struct nncc_shape *shape)
{
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
        return nncc_fail(NNCC_ERR_FORMAT, "'%s': cannot read dataset '%s'%s", LBL(f), path,
                         h5why(&w));
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
    enum nncc_status st = read_scalar(f, path, &dv, &iv, &is_int);
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
    enum nncc_status st = read_scalar(f, path, &dv, &iv, &is_int);
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
