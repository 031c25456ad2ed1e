/*
 * keras_zip.c — the zip archives of .keras files (keras_zip.h) over libzip.
 *
 * Contract (see keras_zip.h).  Reading: the archive is opened only when it
 * is a regular file (io_open_regular: a FIFO or a device is refused without
 * blocking) and handed to libzip as that descriptor.  It is opened twice:
 * first without ZIP_CHECKCONS, to check every member name and report a bad
 * one by name (libzip's consistency check refuses duplicate names itself,
 * but only as "file already exists", naming nothing); then with
 * ZIP_CHECKCONS (local headers against the central directory) for the
 * reads.  Each requested member is checked before allocation (size limit,
 * stored or deflated, not encrypted) and must yield exactly its declared
 * size; libzip checks the CRC at its end.
 * Writing: the archive is built in memory (libzip over a buffer source),
 * members deflated with a fixed modification time so that the same members
 * give the same bytes, then written to runtime/io/atomic.c's temporary file
 * and renamed over the target.
 */
#include "runtime/io/keras_zip.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zip.h>

#include "ir/error.h"
#include "runtime/io/atomic.h"
#include "runtime/io/open_regular.h"

/* Member names longer than this are not Keras's (its names are short). */
#define KZIP_MAX_NAME 4096
/* 2000-01-01 00:00:00 UTC: every member's modification time on write. */
#define KZIP_MTIME ((time_t)946684800)

/* Why a member name is refused, or NULL when it is fine. `len` is the
 * name's length as the archive stores it (a NUL inside makes it longer
 * than strlen). */
static const char *bad_name(const char *name, size_t len)
{
    if (len == 0) return "an empty name";
    if (len > KZIP_MAX_NAME) return "a name too long";
    if (strlen(name) != len) return "a NUL byte in the name";
    if (name[0] == '/') return "an absolute path";
    if (strchr(name, '\\')) return "a backslash in the name";
    if (len >= 2 && name[1] == ':') return "a drive letter";
    for (const char *p = name; *p;) {
        size_t c = strcspn(p, "/");
        if (c == 2 && p[0] == '.' && p[1] == '.') return "a '..' component";
        p += c;
        if (*p) p++;
    }
    return NULL;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The archive's error as text. */
static const char *zerr(zip_t *za) { return za ? zip_strerror(za) : "unknown"; }

static const char *code_str(int code, char *buf, size_t size)
{
    zip_error_t e;
    zip_error_init_with_code(&e, code);
    snprintf(buf, size, "%s", zip_error_strerror(&e));
    zip_error_fini(&e);
    return buf;
}

/* Deflate expands at most ~1032:1: a member declaring more than this many
 * times its compressed size (plus a little) is refused before allocation. */
#define KZIP_MAX_RATIO 1032

/* Opens the archive at path (a regular file) with libzip flags; its size
 * goes to *file_size. */
static zip_t *open_archive(const char *path, int flags, uint64_t *file_size)
{
    struct stat st;
    const char *why = NULL;
    int fd = io_open_regular(path, &st, &why);
    if (fd < 0)
        return NNCC_FAIL_NULL(NNCC_ERR_IO, "'%s': %s", path, why ? why : strerror(errno));
    *file_size = (uint64_t)st.st_size;
    int code = 0;
    zip_t *za = zip_fdopen(fd, flags, &code); /* owns fd on success */
    if (!za) {
        close(fd);
        char buf[128];
        return NNCC_FAIL_NULL(code == ZIP_ER_NOZIP ? NNCC_ERR_FORMAT : NNCC_ERR_FORMAT,
                              "'%s': not a readable zip archive (%s)", path,
                              code_str(code, buf, sizeof buf));
    }
    return za;
}

/* Every member name checked: well-formed and listed once. */
static enum nncc_status check_names(const char *path)
{
    uint64_t file_size;
    zip_t *za = open_archive(path, ZIP_RDONLY, &file_size);
    if (!za) return nncc_last_status();
    enum nncc_status st = NNCC_OK;
    zip_int64_t n = zip_get_num_entries(za, 0);
    const char **names = n > 0 ? calloc((size_t)n, sizeof *names) : NULL;
    if (n > 0 && !names) st = nncc_fail(NNCC_ERR_NOMEM, "'%s': out of memory", path);
    for (zip_int64_t i = 0; st == NNCC_OK && i < n; i++) {
        const char *name = zip_get_name(za, (zip_uint64_t)i, ZIP_FL_ENC_RAW);
        if (!name) {
            st = nncc_fail(NNCC_ERR_FORMAT, "'%s': member %lld: unreadable name (%s)", path,
                           (long long)i, zerr(za));
            break;
        }
        /* libzip hands names out NUL-terminated: a name with a NUL inside
         * reads as its part before it (and a duplicate is then caught). */
        size_t len = strlen(name);
        const char *why = bad_name(name, len);
        if (why)
            st = nncc_fail(NNCC_ERR_FORMAT,
                           "'%s': member '%s' has %s: not an archive Keras wrote (refused)", path,
                           name, why);
        names[i] = name;
    }
    if (st == NNCC_OK && n > 1) {
        qsort(names, (size_t)n, sizeof *names, cmp_str);
        for (zip_int64_t i = 1; i < n; i++)
            if (!strcmp(names[i - 1], names[i])) {
                st = nncc_fail(NNCC_ERR_FORMAT,
                               "'%s': member '%s' is listed twice: not an archive Keras wrote "
                               "(refused)",
                               path, names[i]);
                break;
            }
    }
    free(names);
    zip_discard(za);
    return st;
}

/* Reads member m (found at index idx) whole. */
static enum nncc_status read_member(const char *path, zip_t *za, zip_int64_t idx,
                                    struct kzip_member *m, uint64_t file_size)
{
    zip_stat_t zs;
    zip_stat_init(&zs);
    if (zip_stat_index(za, (zip_uint64_t)idx, 0, &zs) != 0)
        return nncc_fail(NNCC_ERR_FORMAT, "'%s': member '%s': unreadable entry (%s)", path,
                         m->name, zerr(za));
    if (!(zs.valid & ZIP_STAT_SIZE) || zs.size > KZIP_MAX_MEMBER)
        return nncc_fail(NNCC_ERR_FORMAT,
                         "'%s': member '%s' declares %llu bytes (at most %zu)", path, m->name,
                         (unsigned long long)zs.size, KZIP_MAX_MEMBER);
    if ((zs.valid & ZIP_STAT_ENCRYPTION_METHOD) && zs.encryption_method != ZIP_EM_NONE)
        return nncc_fail(NNCC_ERR_UNSUPPORTED, "'%s': member '%s' is encrypted", path, m->name);
    if ((zs.valid & ZIP_STAT_COMP_METHOD) && zs.comp_method != ZIP_CM_STORE &&
        zs.comp_method != ZIP_CM_DEFLATE)
        return nncc_fail(NNCC_ERR_UNSUPPORTED,
                         "'%s': member '%s' uses compression method %u (only stored and "
                         "deflated are read)",
                         path, m->name, (unsigned)zs.comp_method);
    /* The declared size against the data there is: a stored member holds
     * exactly its size, a deflated one at most KZIP_MAX_RATIO times its
     * compressed size, and the compressed data lies inside the archive. */
    uint64_t comp = (zs.valid & ZIP_STAT_COMP_SIZE) ? zs.comp_size : UINT64_MAX;
    uint64_t most = comp > file_size ? 0
                    : zs.comp_method == ZIP_CM_STORE ? comp
                                                     : comp * KZIP_MAX_RATIO + 1024;
    if (comp > file_size || zs.size > most)
        return nncc_fail(NNCC_ERR_FORMAT,
                         "'%s': member '%s' declares %llu bytes from %llu compressed bytes "
                         "(archive of %llu bytes)",
                         path, m->name, (unsigned long long)zs.size, (unsigned long long)comp,
                         (unsigned long long)file_size);
    size_t size = (size_t)zs.size;
    char *buf = malloc(size + 1);
    if (!buf)
        return nncc_fail(NNCC_ERR_NOMEM, "'%s': member '%s': out of memory for %zu bytes", path,
                         m->name, size);
    zip_file_t *zf = zip_fopen_index(za, (zip_uint64_t)idx, 0);
    if (!zf) {
        free(buf);
        return nncc_fail(NNCC_ERR_FORMAT, "'%s': member '%s': cannot open (%s)", path, m->name,
                         zerr(za));
    }
    enum nncc_status st = NNCC_OK;
    size_t got = 0;
    while (got < size) {
        zip_int64_t r = zip_fread(zf, buf + got, size - got);
        if (r < 0) {
            st = nncc_fail(NNCC_ERR_FORMAT, "'%s': member '%s': corrupt data after %zu bytes (%s)",
                           path, m->name, got, zip_file_strerror(zf));
            break;
        }
        if (r == 0) {
            st = nncc_fail(NNCC_ERR_FORMAT,
                           "'%s': member '%s' declares %zu bytes but holds only %zu", path,
                           m->name, size, got);
            break;
        }
        got += (size_t)r;
    }
    if (st == NNCC_OK) {
        /* Past the declared size there must be nothing, and the CRC (checked
         * by libzip at the end) must match. */
        char extra;
        zip_int64_t r = zip_fread(zf, &extra, 1);
        if (r > 0)
            st = nncc_fail(NNCC_ERR_FORMAT, "'%s': member '%s' holds more than its declared %zu bytes",
                           path, m->name, size);
        else if (r < 0)
            st = nncc_fail(NNCC_ERR_FORMAT, "'%s': member '%s': corrupt data (%s)", path, m->name,
                           zip_file_strerror(zf));
    }
    zip_fclose(zf);
    if (st != NNCC_OK) {
        free(buf);
        return st;
    }
    buf[size] = 0;
    m->data = buf;
    m->size = size;
    return NNCC_OK;
}

enum nncc_status kzip_read(const char *path, struct kzip_member *members, int n)
{
    for (int i = 0; i < n; i++) {
        members[i].data = NULL;
        members[i].size = 0;
    }
    if (!path) return nncc_fail(NNCC_ERR_ARG, "kzip_read: no path given");
    enum nncc_status st = check_names(path);
    if (st != NNCC_OK) return st;
    uint64_t file_size;
    zip_t *za = open_archive(path, ZIP_RDONLY | ZIP_CHECKCONS, &file_size);
    if (!za) return nncc_last_status();
    for (int i = 0; st == NNCC_OK && i < n; i++) {
        struct kzip_member *m = &members[i];
        zip_int64_t idx = m->name ? zip_name_locate(za, m->name, ZIP_FL_ENC_RAW) : -1;
        if (idx < 0) {
            if (!m->optional)
                st = nncc_fail(NNCC_ERR_FORMAT, "'%s': no member '%s' in the archive", path,
                               m->name ? m->name : "(null)");
            continue;
        }
        st = read_member(path, za, idx, m, file_size);
    }
    zip_discard(za);
    if (st != NNCC_OK) kzip_members_free(members, n);
    return st;
}

void kzip_members_free(struct kzip_member *members, int n)
{
    for (int i = 0; i < n; i++) {
        free(members[i].data);
        members[i].data = NULL;
        members[i].size = 0;
    }
}

/* Writes all of buf to fd. */
static bool write_full(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

/* Builds the archive in memory: *src holds it after zip_close. */
static enum nncc_status build(const char *path, const char *what,
                              const struct kzip_member *members, int n, zip_source_t **out)
{
    zip_error_t err;
    zip_error_init(&err);
    zip_source_t *src = zip_source_buffer_create(NULL, 0, 0, &err);
    zip_t *za = src ? zip_open_from_source(src, ZIP_TRUNCATE, &err) : NULL;
    if (!za) {
        enum nncc_status st = nncc_fail(NNCC_ERR_NOMEM, "%s: '%s': cannot make an archive (%s)",
                                        what, path, zip_error_strerror(&err));
        if (src) zip_source_free(src);
        zip_error_fini(&err);
        return st;
    }
    zip_error_fini(&err);
    zip_source_keep(src); /* zip_close must leave the buffer to us */
    enum nncc_status st = NNCC_OK;
    for (int i = 0; st == NNCC_OK && i < n; i++) {
        const struct kzip_member *m = &members[i];
        const char *why = m->name ? bad_name(m->name, strlen(m->name)) : "no name";
        if (why) {
            st = nncc_fail(NNCC_ERR_ARG, "%s: '%s': member '%s' has %s", what, path,
                           m->name ? m->name : "(null)", why);
            break;
        }
        if (m->size > KZIP_MAX_MEMBER || (m->size > 0 && !m->data)) {
            st = nncc_fail(NNCC_ERR_ARG, "%s: '%s': member '%s': %zu bytes (at most %zu)", what,
                           path, m->name, m->size, KZIP_MAX_MEMBER);
            break;
        }
        zip_source_t *ms = zip_source_buffer(za, m->data, m->size, 0);
        zip_int64_t idx = ms ? zip_file_add(za, m->name, ms, ZIP_FL_ENC_UTF_8) : -1;
        if (idx < 0) {
            st = nncc_fail(zip_error_code_zip(zip_get_error(za)) == ZIP_ER_EXISTS ? NNCC_ERR_ARG
                                                                                  : NNCC_ERR_IO,
                           "%s: '%s': cannot add member '%s' (%s)", what, path, m->name,
                           zerr(za));
            if (ms) zip_source_free(ms);
            break;
        }
        if (zip_set_file_compression(za, (zip_uint64_t)idx, ZIP_CM_DEFLATE, 0) != 0 ||
            zip_file_set_mtime(za, (zip_uint64_t)idx, KZIP_MTIME, 0) != 0)
            st = nncc_fail(NNCC_ERR_IO, "%s: '%s': member '%s': %s", what, path, m->name,
                           zerr(za));
    }
    if (st != NNCC_OK) {
        zip_discard(za);
        zip_source_free(src);
        return st;
    }
    if (zip_close(za) != 0) {
        st = nncc_fail(NNCC_ERR_IO, "%s: '%s': cannot make the archive (%s)", what, path,
                       zerr(za));
        zip_discard(za);
        zip_source_free(src);
        return st;
    }
    *out = src;
    return NNCC_OK;
}

enum nncc_status kzip_write(const char *path, const char *what, const struct kzip_member *members,
                            int n)
{
    if (!what) what = "kzip_write";
    if (!path) return nncc_fail(NNCC_ERR_ARG, "%s: no path given", what);
    zip_source_t *src = NULL;
    enum nncc_status st = build(path, what, members, n, &src);
    if (st != NNCC_OK) return st;
    struct atomic_file af;
    st = atomic_open(&af, path, what);
    if (st != NNCC_OK) {
        zip_source_free(src);
        return st;
    }
    bool opened = n > 0 && zip_source_open(src) == 0, ok = n == 0 || opened;
    char buf[1 << 16];
    if (n == 0) {
        /* libzip writes nothing for an archive without members (it would
         * delete the file): the empty archive is its end record alone. */
        static const unsigned char eocd[22] = {'P', 'K', 5, 6};
        ok = write_full(af.fd, eocd, sizeof eocd);
    }
    while (ok && n > 0) {
        zip_int64_t r = zip_source_read(src, buf, sizeof buf);
        if (r < 0) ok = false;
        if (r <= 0) break;
        ok = write_full(af.fd, buf, (size_t)r);
    }
    int err = errno;
    if (opened) zip_source_close(src);
    zip_source_free(src);
    if (!ok) {
        atomic_abort(&af, NULL);
        return nncc_fail(NNCC_ERR_IO, "%s: cannot write '%s': %s", what, path, strerror(err));
    }
    return atomic_commit(&af, NULL, what, path);
}
