/*
 * atomic.c — replacing a file atomically (the contract: atomic.h).
 *
 * Why each step: the temporary file sits in the target's folder so rename()
 * never crosses file systems; it takes the target's permissions before any
 * byte is written, so a 0600 file's contents are never readable by others,
 * not even in the temporary file; the path's symbolic links are followed by
 * hand (not realpath(), which fails on a dangling link) so saving through a
 * link writes its target, as fopen("w") would, instead of replacing the link
 * with a regular file; the temporary name is short and fixed-length, so a
 * target name of up to NAME_MAX bytes still gets one.  Stale temporary files
 * are removed when the same target is next written: a save killed midway
 * leaves one, and nothing else would ever clean it up.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "runtime/io/atomic.h"

#define MAX_LINK_HOPS 40 /* as Linux's ELOOP limit */

/* path's folder ("." when it has none) and base name, malloc'd. */
static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return strdup(".");
    if (slash == path)
        return strdup("/");
    char *d = malloc((size_t)(slash - path) + 1);
    if (d) {
        memcpy(d, path, (size_t)(slash - path));
        d[slash - path] = '\0';
    }
    return d;
}

static const char *base_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* Follows the symbolic links at path to the file to write (which need not
 * exist); malloc'd, or NULL with errno set. */
static char *resolve(const char *path)
{
    char *cur = strdup(path);
    for (int hops = 0; cur; hops++) {
        struct stat st;
        if (lstat(cur, &st) != 0 || !S_ISLNK(st.st_mode))
            return cur; /* a new file, a regular one, or an error open() reports */
        if (hops == MAX_LINK_HOPS) {
            free(cur);
            errno = ELOOP;
            return NULL;
        }
        size_t cap = (size_t)st.st_size + 2;
        char *link = malloc(cap);
        ssize_t n = link ? readlink(cur, link, cap) : -1;
        if (n < 0 || (size_t)n >= cap) { /* changed under us: give up */
            int e = !link ? ENOMEM : n < 0 ? errno : EAGAIN;
            free(link);
            free(cur);
            errno = e;
            return NULL;
        }
        link[n] = '\0';
        char *next = link;
        const char *slash = strrchr(cur, '/');
        if (link[0] != '/' && slash) { /* relative to the link's folder */
            size_t d = (size_t)(slash - cur) + 1;
            next = malloc(d + (size_t)n + 1);
            if (next) {
                memcpy(next, cur, d);
                memcpy(next + d, link, (size_t)n + 1);
            }
            free(link);
        }
        free(cur);
        cur = next;
    }
    errno = ENOMEM;
    return NULL;
}

void atomic_temp_prefix(const char *target, char buf[24])
{
    uint64_t h = 1469598103934665603u; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)base_of(target); *p; p++)
        h = (h ^ *p) * 1099511628211u;
    snprintf(buf, 24, ".nncc-%016llx.", (unsigned long long)h);
}

/* Removes the stale temporary files of the target in folder dir. */
static void remove_stale(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    size_t plen = strlen(prefix);
    time_t now = time(NULL);
    for (struct dirent *e; (e = readdir(d));) {
        if (strncmp(e->d_name, prefix, plen) != 0)
            continue;
        char *end;
        long pid = strtol(e->d_name + plen, &end, 10);
        size_t len = strlen(dir) + strlen(e->d_name) + 2;
        char *p = malloc(len);
        struct stat st;
        if (p && *end == '.' && pid > 0 && pid <= INT_MAX) {
            snprintf(p, len, "%s/%s", dir, e->d_name);
            bool dead = kill((pid_t)pid, 0) != 0 && errno == ESRCH;
            if (lstat(p, &st) == 0 && S_ISREG(st.st_mode) &&
                (dead || now - st.st_mtime > ATOMIC_STALE_SECONDS))
                (void)unlink(p);
        }
        free(p);
    }
    closedir(d);
}

enum nncc_status atomic_open(struct atomic_file *af, const char *path, const char *who)
{
    af->target = af->tmp = NULL;
    af->fd = -1;
    char *dir = NULL, prefix[24];
    int e = 0;
    if (!(af->target = resolve(path))) {
        e = errno;
        goto fail;
    }
    if (!(dir = dir_of(af->target)))
        goto nomem;
    atomic_temp_prefix(af->target, prefix);
    remove_stale(dir, prefix);
    size_t cap = strlen(dir) + strlen(prefix) + 40;
    if (!(af->tmp = malloc(cap)))
        goto nomem;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)(uintptr_t)af;
    for (int attempt = 0; attempt < 100 && af->fd < 0; attempt++) {
        x = x * 6364136223846793005u + 1442695040888963407u;
        snprintf(af->tmp, cap, "%s/%s%ld.%08lx.tmp", dir, prefix, (long)getpid(),
                 (unsigned long)(x >> 32));
        /* O_EXCL: never someone else's file; 0666 lets the umask decide a
         * new file's permissions, as fopen() does. */
        af->fd = open(af->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (af->fd < 0 && errno != EEXIST)
            break;
    }
    if (af->fd < 0) {
        e = errno;
        goto fail;
    }
    struct stat st;
    if (stat(af->target, &st) == 0 && fchmod(af->fd, st.st_mode & 07777) != 0) {
        e = errno;
        goto fail;
    }
    free(dir);
    return NNCC_OK;
nomem:
    e = ENOMEM;
fail:
    if (af->fd >= 0) {
        close(af->fd);
        unlink(af->tmp);
    }
    free(dir);
    free(af->target);
    free(af->tmp);
    af->target = af->tmp = NULL;
    af->fd = -1;
    return nncc_fail(e == ENOMEM ? NNCC_ERR_NOMEM : NNCC_ERR_IO,
                     "%s: cannot create a temporary file next to '%s': %s", who, path,
                     strerror(e));
}

/* fsync()s the folder holding path, so the rename itself is durable (best
 * effort: some file systems refuse to sync folders). */
static void sync_parent(const char *path)
{
    char *dir = dir_of(path);
    int fd = dir ? open(dir, O_RDONLY | O_CLOEXEC) : -1;
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    free(dir);
}

static void release(struct atomic_file *af)
{
    free(af->target);
    free(af->tmp);
    af->target = af->tmp = NULL;
    af->fd = -1;
}

enum nncc_status atomic_commit(struct atomic_file *af, FILE *f, const char *who, const char *path)
{
    int e = 0;
    if (f && fflush(f) != 0)
        e = errno ? errno : EIO;
    if (!e && fsync(af->fd) != 0)
        e = errno;
    if ((f ? fclose(f) : close(af->fd)) != 0 && !e)
        e = errno ? errno : EIO;
    if (!e && rename(af->tmp, af->target) != 0)
        e = errno;
    if (e) {
        unlink(af->tmp);
        release(af);
        return nncc_fail(NNCC_ERR_IO, "%s: cannot write '%s': %s", who, path, strerror(e));
    }
    sync_parent(af->target);
    release(af);
    return NNCC_OK;
}

void atomic_abort(struct atomic_file *af, FILE *f)
{
    if (f)
        fclose(f);
    else if (af->fd >= 0)
        close(af->fd);
    if (af->tmp)
        unlink(af->tmp);
    release(af);
}
