/*
 * jit.c — the JIT toolchain: one C translation unit in, a loaded shared
 * object out.
 *
 * nncc_jit_init() picks the compiler ($NNCC_CC, else clang, else cc) and proves
 * it runs by reading the first line of `CC --version`, which also identifies it
 * in the cache key; it then creates the cache folder ($XDG_CACHE_HOME/nncc,
 * else $HOME/.cache/nncc).  nncc_jit_compile() names the output by the SHA-256
 * of (source, flags, compiler version, public header), so an existing
 * <key>.so is a hit and no compiler runs; on a miss it writes <key>.c (the
 * source followed by `const char nncc_cache_key[] = "<key>";`) and runs the
 * compiler into a temporary file that is renamed into place only on success,
 * after its SHA-256 went into <key>.so.sha256 (<key>.exe.sha256 for a
 * program).  Every file in the cache is written to a unique temporary name
 * and renamed, so the cache never holds a partial file and several processes
 * compiling the same source at once all succeed (the last rename wins, with
 * identical content).  The public header
 * is written once per header version to <cache>/include/<sha256 of
 * header>/nncc.h and passed with -I, so code is always compiled against the
 * header of the library that loads it.  nncc_jit_compile_file() compiles a
 * user's file where it is (messages point into it), keyed by its
 * preprocessed text, and keeps its warnings in <key>.<ext>.log to show them
 * again on a hit.
 *
 * Nothing found in the cache is trusted (see "Verifying cache entries"): a
 * hit is used only when its hash file matches and it holds its key, checked
 * on bytes read before anything is mapped or run; nncc_jit_load() checks the
 * nncc_cache_key symbol too.  A bad entry is rebuilt (a note under
 * NNCC_VERBOSE).  The header copy is compared with the embedded text and a
 * source is rewritten on every miss.  Temporary files older than an hour are
 * removed whenever an entry is written.  The cache is per user: its folders
 * are made 0700 and a folder another user owns or can write is refused.
 *
 * Child processes are started with posix_spawnp() and an argv array, never a
 * shell, so paths and flags need no quoting.  Errors go through nncc_fail();
 * all state lives in struct nncc_jit or on the stack.
 */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L /* posix_spawn, mkstemp, clock_gettime, strdup */
#endif

#define _XOPEN_SOURCE 700 /* realpath */
#include <ctype.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ir/error.h"
#include "runtime/jit/jit.h"
#include "ir/sha256.h"

extern char **environ; /* passed to posix_spawnp(): the child inherits our environment */

#define JIT_PATH_CAP 1400          /* any path built under the cache folder fits */
#define JIT_OUTPUT_CAP (1u << 20)  /* compiler output kept; the rest is drained and dropped */
#define JIT_MSG_DIAG_CAP 8000      /* diagnostics quoted in nncc_last_error() */

/* ---- Small helpers ----------------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static bool is_regular_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* mkdir -p with mode 0700 (the cache is per user; see nncc_jit_init).
 * Returns 0 or an errno value. */
static int mkdir_p(const char *path)
{
    char buf[JIT_PATH_CAP];
    size_t n = strlen(path);
    if (n == 0) return ENOENT;
    if (n >= sizeof buf) return ENAMETOOLONG;
    memcpy(buf, path, n + 1);

    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0') continue;
        char saved = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0700) != 0 && errno != EEXIST) {
            /* An existing folder can still fail with EACCES on some systems. */
            int err = errno;
            struct stat st;
            if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode)) return err;
        }
        buf[i] = saved;
    }
    struct stat st;
    if (stat(path, &st) != 0) return errno;
    return S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
}

/* Writes data to path atomically: a unique temporary file in the same folder
 * (so rename() cannot cross file systems), then rename().  Readers see either
 * no file or the whole file. */
static enum nncc_status write_atomic(const char *path, const void *data, size_t len)
{
    char tmp[JIT_PATH_CAP];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", path) >= sizeof tmp)
        return nncc_fail(NNCC_ERR_IO, "path too long: '%s'", path);
    int fd = mkstemp(tmp);
    if (fd < 0) return nncc_fail(NNCC_ERR_IO, "cannot create '%s': %s", tmp, strerror(errno));
    fchmod(fd, 0644); /* mkstemp makes 0600; readable like the objects (0755) */

    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            int err = n < 0 ? errno : EIO;
            close(fd);
            unlink(tmp);
            return nncc_fail(NNCC_ERR_IO, "cannot write '%s': %s", tmp, strerror(err));
        }
        p += n;
        len -= (size_t)n;
    }
    if (close(fd) != 0) {
        int err = errno;
        unlink(tmp);
        return nncc_fail(NNCC_ERR_IO, "cannot write '%s': %s", tmp, strerror(err));
    }
    if (rename(tmp, path) != 0) {
        int err = errno;
        unlink(tmp);
        return nncc_fail(NNCC_ERR_IO, "cannot rename '%s' to '%s': %s", tmp, path,
                         strerror(err));
    }
    return NNCC_OK;
}

/* Reads all of fd with read() (never a mapping: a file truncated under a
 * mapping raises SIGBUS; read() just returns less), in a NUL-terminated
 * malloc'd buffer that starts at `hint` + 1 bytes and grows, since pipes and
 * /proc files have no size.  NULL with *err set (errno, or ENOMEM). */
static char *read_fd(int fd, size_t hint, size_t *len, int *err)
{
    size_t cap = hint + 1, n = 0;
    char *buf = malloc(cap);
    *err = buf ? 0 : ENOMEM;
    while (buf) {
        if (n + 1 >= cap) {
            char *grown = cap > SIZE_MAX / 2 ? NULL : realloc(buf, cap * 2);
            if (!grown) {
                *err = ENOMEM;
                break;
            }
            buf = grown;
            cap *= 2;
        }
        ssize_t got = read(fd, buf + n, cap - 1 - n);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) *err = errno;
        if (got <= 0) break;
        n += (size_t)got;
    }
    if (*err) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* Reads a whole regular file without mapping it.  NULL on any failure,
 * with no error recorded: the callers treat an unreadable entry as bad. */
static char *read_quiet(const char *path, size_t *len)
{
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return NULL;
    struct stat st;
    int err = 0;
    char *buf = fstat(fd, &st) == 0 && S_ISREG(st.st_mode)
                    ? read_fd(fd, (size_t)st.st_size, len, &err)
                    : NULL;
    close(fd);
    return buf;
}

/* True when hay[0..n) contains needle[0..m). */
static bool contains(const char *hay, size_t n, const char *needle, size_t m)
{
    if (m == 0) return true;
    for (size_t i = 0; n >= m && i <= n - m; i++) {
        const char *q = memchr(hay + i, needle[0], n - m + 1 - i);
        if (!q) return false;
        i = (size_t)(q - hay);
        if (memcmp(q, needle, m) == 0) return true;
    }
    return false;
}

/* ---- Verifying cache entries ------------------------------------------- */

/* Every object or executable <key>.so / <key>.exe has a hash file
 * <key>.so.sha256 holding the SHA-256 of its bytes (64 hex digits and a
 * newline), written when the entry is.  And the object holds its key:
 * the compiled source ends with
 *     const char nncc_cache_key[] = "<key>";
 * An entry is used only when the hash file exists and matches and the key's
 * text (with its NUL) is in the file; both are checked on the bytes read
 * with read(), before dlopen() or exec, so a truncated file is never mapped.
 * nncc_jit_load() then checks the symbol itself.  What this guards against
 * is damage and mix-ups (a killed writer, a full disk, a copy under the
 * wrong name), not someone with write access to the cache: they could write
 * a matching hash file, which is why the cache folder must be private
 * (nncc_jit_init). */

#define JIT_HASH_SUFFIX ".sha256"

/* Checks the entry `path` stored under `key`; false with the reason in
 * `why` when it must not be used. */
static bool entry_ok(const char *path, const char *key, char *why, size_t wsize)
{
    char hash_path[JIT_PATH_CAP];
    if ((size_t)snprintf(hash_path, sizeof hash_path, "%s" JIT_HASH_SUFFIX, path) >=
        sizeof hash_path) {
        snprintf(why, wsize, "path too long");
        return false;
    }
    size_t hlen, len;
    char *recorded = read_quiet(hash_path, &hlen);
    bool hash_ok = recorded && (hlen == 64 || (hlen == 65 && recorded[64] == '\n'));
    for (size_t i = 0; hash_ok && i < 64; i++)
        hash_ok = isxdigit((unsigned char)recorded[i]) && !isupper((unsigned char)recorded[i]);
    if (!hash_ok) {
        snprintf(why, wsize, "%s hash file %s" JIT_HASH_SUFFIX, recorded ? "a malformed" : "no",
                 strrchr(path, '/') ? strrchr(path, '/') + 1 : path);
        free(recorded);
        return false;
    }
    char *data = read_quiet(path, &len);
    if (!data) {
        free(recorded);
        snprintf(why, wsize, "cannot read it");
        return false;
    }
    char hex[NNCC_SHA256_HEX_SIZE];
    nncc_sha256_str(data, len, hex);
    bool ok = memcmp(hex, recorded, 64) == 0;
    if (!ok)
        snprintf(why, wsize, "%zu bytes whose SHA-256 %.12s... is not the %.12s... recorded "
                 "when it was written: truncated or replaced", len, hex, recorded);
    else if (!(ok = contains(data, len, key, strlen(key) + 1)))
        snprintf(why, wsize, "it does not hold its key %.12s... (nncc_cache_key): the object "
                 "of another source", key);
    free(recorded);
    free(data);
    return ok;
}

/* Writes the hash file of the finished (not yet renamed) entry `tmp` that
 * will become `path`. */
static enum nncc_status write_entry_hash(const char *tmp, const char *path)
{
    size_t len;
    char *data = read_quiet(tmp, &len);
    if (!data) return nncc_fail(NNCC_ERR_IO, "cannot read '%s': %s", tmp, strerror(errno));
    char hex[NNCC_SHA256_HEX_SIZE + 1], hash_path[JIT_PATH_CAP];
    nncc_sha256_str(data, len, hex);
    free(data);
    strcat(hex, "\n");
    if ((size_t)snprintf(hash_path, sizeof hash_path, "%s" JIT_HASH_SUFFIX, path) >=
        sizeof hash_path)
        return nncc_fail(NNCC_ERR_IO, "path too long: '%s'", path);
    return write_atomic(hash_path, hex, 65);
}

/* The key a cache-named object is stored under (<64 hex>.so), or false for
 * any other file name. */
static bool key_of_path(const char *path, char key[NNCC_SHA256_HEX_SIZE])
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    if (strlen(base) != 67 || strcmp(base + 64, ".so") != 0) return false;
    for (int i = 0; i < 64; i++)
        if (!isxdigit((unsigned char)base[i]) || isupper((unsigned char)base[i])) return false;
    memcpy(key, base, 64);
    key[64] = '\0';
    return true;
}

/* ---- Temporary files of killed compiles -------------------------------- */

/* A temporary file (NAME.tmp.XXXXXX) older than this belongs to a writer
 * that died: no compile of generated code comes near an hour, and a live
 * compiler's output file is only created when it starts writing. */
#define JIT_TMP_STALE_S 3600

static void sweep_folder(const struct nncc_jit *jit, const char *dir, int depth)
{
    DIR *d = opendir(dir);
    if (!d) return;
    time_t now = time(NULL);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char path[JIT_PATH_CAP];
        if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= sizeof path) continue;
        struct stat st;
        if (lstat(path, &st) != 0) continue;
        if (S_ISDIR(st.st_mode) && depth > 0) {
            sweep_folder(jit, path, depth - 1);
            continue;
        }
        if (!S_ISREG(st.st_mode) || !strstr(e->d_name, ".tmp.") || st.st_uid != geteuid() ||
            now - st.st_mtime < JIT_TMP_STALE_S)
            continue;
        if (unlink(path) == 0 && jit->verbose)
            fprintf(stderr, "nncc: jit: removed stale temporary file '%s' (%lld min old)\n",
                    path, (long long)(now - st.st_mtime) / 60);
    }
    closedir(d);
}

/* Removes stale temporary files from the cache folder and the header
 * folders (<cache>/include/<hash>/). */
static void sweep_stale_temps(const struct nncc_jit *jit)
{
    sweep_folder(jit, jit->cache_dir, 0);
    char inc[JIT_PATH_CAP];
    if ((size_t)snprintf(inc, sizeof inc, "%s/include", jit->cache_dir) < sizeof inc)
        sweep_folder(jit, inc, 1);
}

/* ---- Running a child process ------------------------------------------- */

/* What a finished child process did. */
struct run_out {
    char *text;   /* its stdout and stderr interleaved, NUL-terminated (malloc'd) */
    size_t len;   /* bytes in text */
    int wstatus;  /* as from waitpid() */
};

/* Appends to a growing NUL-terminated buffer; false when out of memory. */
static bool out_append(struct run_out *out, size_t *cap, const char *p, size_t n)
{
    if (out->len + n + 1 > *cap) {
        size_t want = *cap ? *cap : 4096;
        while (want < out->len + n + 1) want *= 2;
        char *grown = realloc(out->text, want);
        if (!grown) return false;
        out->text = grown;
        *cap = want;
    }
    memcpy(out->text + out->len, p, n);
    out->len += n;
    out->text[out->len] = '\0';
    return true;
}

/* Runs argv (argv[0] looked up on PATH; no shell) with stdin from /dev/null
 * and stdout and stderr into one pipe, and waits for it.  Returns 0, or an
 * errno value when it could not be started or its output not kept (out->text
 * is then NULL).  Output beyond JIT_OUTPUT_CAP is read but dropped, so a
 * chatty compiler can never block on a full pipe. */
static int run_capture(char *const argv[], struct run_out *out)
{
    memset(out, 0, sizeof *out);
    int fd[2];
    if (pipe(fd) != 0) return errno;
    /* Close-on-exec, so that children spawned concurrently by other threads do
     * not inherit the write end and keep our read from ever seeing EOF.  The
     * dup2()ed copies in our own child do not carry the flag. */
    fcntl(fd[0], F_SETFD, FD_CLOEXEC);
    fcntl(fd[1], F_SETFD, FD_CLOEXEC);

    posix_spawn_file_actions_t fa;
    pid_t pid = 0;
    int err = posix_spawn_file_actions_init(&fa);
    if (err == 0) {
        err = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
        if (err == 0) err = posix_spawn_file_actions_adddup2(&fa, fd[1], 1);
        if (err == 0) err = posix_spawn_file_actions_adddup2(&fa, fd[1], 2);
        if (err == 0) err = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
        posix_spawn_file_actions_destroy(&fa);
    }
    close(fd[1]);
    if (err != 0) {
        close(fd[0]);
        return err;
    }

    size_t cap = 0;
    bool nomem = false, dropped = false;
    for (;;) {
        char chunk[4096];
        ssize_t n = read(fd[0], chunk, sizeof chunk);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        size_t keep = (size_t)n;
        if (out->len + keep > JIT_OUTPUT_CAP) {
            keep = JIT_OUTPUT_CAP - out->len;
            dropped = true;
        }
        if (!nomem && keep > 0 && !out_append(out, &cap, chunk, keep)) nomem = true;
    }
    close(fd[0]);

    while (waitpid(pid, &out->wstatus, 0) < 0) {
        if (errno != EINTR) {
            err = errno; /* e.g. ECHILD when SIGCHLD is ignored: the status is lost */
            break;
        }
    }
    if (!nomem && dropped) {
        static const char note[] = "\n[nncc: output truncated]\n";
        nomem = !out_append(out, &cap, note, sizeof note - 1);
    }
    if (nomem) err = ENOMEM;
    if (err != 0) {
        free(out->text);
        out->text = NULL;
        out->len = 0;
    }
    return err;
}

/* "exit 1" or "signal 11": how a child ended, for messages. */
static void describe_wstatus(int wstatus, char *buf, size_t size)
{
    if (WIFEXITED(wstatus))
        snprintf(buf, size, "exit %d", WEXITSTATUS(wstatus));
    else if (WIFSIGNALED(wstatus))
        snprintf(buf, size, "signal %d", WTERMSIG(wstatus));
    else
        snprintf(buf, size, "status %d", wstatus);
}

/* ---- nncc_jit_init ----------------------------------------------------- */

/* Runs `cc --version` and keeps its first non-empty line in `version`.
 * Returns true when it ran and exited 0; otherwise says why in `why`. */
bool nncc_find_on_path(const char *prog, char *found, size_t size)
{
    const char *path = getenv("PATH");
    for (const char *d = path ? path : "/usr/bin:/bin"; *d;) {
        size_t n = strcspn(d, ":");
        if ((size_t)snprintf(found, size, "%.*s/%s", (int)n, n ? d : ".", prog) < size &&
            access(found, X_OK) == 0)
            return true;
        d += n + (d[n] == ':');
    }
    if (size)
        found[0] = '\0';
    return false;
}

/* Finds compiler `cc` (a path, or a name looked up in $PATH) and writes
 * its identity for the cache key into `version`: the resolved file with its
 * size, modification time and inode.  Running `cc --version` would say the
 * same at the cost of starting the compiler (about 60 ms for clang) on every
 * cache hit; any upgrade replaces the file and so changes the key. */
static bool probe_compiler(const char *cc, char *version, size_t vsize, char *why,
                           size_t wsize)
{
    char found[JIT_PATH_CAP] = "";
    if (strchr(cc, '/'))
        snprintf(found, sizeof found, "%s", cc);
    else
        nncc_find_on_path(cc, found, sizeof found);
    char real[JIT_PATH_CAP];
    struct stat st;
    if (!found[0] || !realpath(found, real) || stat(real, &st) != 0 || !S_ISREG(st.st_mode) ||
        access(real, X_OK) != 0) {
        snprintf(why, wsize, "%s", found[0] ? strerror(errno ? errno : EACCES)
                                            : "not found in $PATH");
        return false;
    }
    /* The numbers first: a path too long for the key is cut, not they. */
    int w = snprintf(version, vsize, "size %lld mtime %lld.%09ld inode %llu %s",
                     (long long)st.st_size, (long long)st.st_mtim.tv_sec,
                     (long)st.st_mtim.tv_nsec, (unsigned long long)st.st_ino, real);
    return w > 0;
}

enum nncc_status nncc_jit_init(struct nncc_jit *jit)
{
    if (!jit) return nncc_fail(NNCC_ERR_ARG, "nncc_jit_init: jit is NULL");
    memset(jit, 0, sizeof *jit);

    const char *verbose = getenv("NNCC_VERBOSE");
    jit->verbose = verbose && verbose[0] && strcmp(verbose, "0") != 0;

    /* The compiler.  An explicit $NNCC_CC is used alone: falling back to
     * another compiler would silently ignore what the user asked for. */
    char why[512];
    const char *env_cc = getenv("NNCC_CC");
    if (env_cc && env_cc[0]) {
        if (strlen(env_cc) >= sizeof jit->cc)
            return nncc_fail(NNCC_ERR_ARG, "NNCC_CC is too long (%zu characters, at most %zu)",
                             strlen(env_cc), sizeof jit->cc - 1);
        if (!probe_compiler(env_cc, jit->cc_version, sizeof jit->cc_version, why, sizeof why))
            return nncc_fail(NNCC_ERR_COMPILE, "no C compiler found: tried $NNCC_CC=%s (%s)",
                             env_cc, why);
        snprintf(jit->cc, sizeof jit->cc, "%s", env_cc);
    } else {
        char why_cc[512];
        if (probe_compiler("clang", jit->cc_version, sizeof jit->cc_version, why, sizeof why))
            snprintf(jit->cc, sizeof jit->cc, "clang");
        else if (probe_compiler("cc", jit->cc_version, sizeof jit->cc_version, why_cc,
                                sizeof why_cc))
            snprintf(jit->cc, sizeof jit->cc, "cc");
        else
            return nncc_fail(NNCC_ERR_COMPILE,
                             "no C compiler found: tried clang (%s), cc (%s); "
                             "set NNCC_CC to a C compiler",
                             why, why_cc);
    }

    /* The cache folder. */
    const char *xdg = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");
    int n;
    if (xdg && xdg[0])
        n = snprintf(jit->cache_dir, sizeof jit->cache_dir, "%s/nncc", xdg);
    else if (home && home[0])
        n = snprintf(jit->cache_dir, sizeof jit->cache_dir, "%s/.cache/nncc", home);
    else
        return nncc_fail(NNCC_ERR_IO,
                         "cannot find a cache folder: neither XDG_CACHE_HOME nor HOME is set");
    if (n < 0 || (size_t)n >= sizeof jit->cache_dir)
        return nncc_fail(NNCC_ERR_IO, "cannot create cache folder: path too long (%d bytes)",
                         n);
    int err = mkdir_p(jit->cache_dir);
    if (err != 0)
        return nncc_fail(NNCC_ERR_IO, "cannot create cache folder '%s': %s", jit->cache_dir,
                         strerror(err));
    /* The cache is per user.  Whoever can write it chooses the code nncc
     * loads (a matching hash file is easy to write), so a folder another
     * user owns or may write is refused, as ssh refuses a writable ~/.ssh.
     * Root's folders are trusted, as root could change anything anyway. */
    struct stat st;
    if (stat(jit->cache_dir, &st) != 0)
        return nncc_fail(NNCC_ERR_IO, "cannot use cache folder '%s': %s", jit->cache_dir,
                         strerror(errno));
    if (st.st_uid != geteuid() && st.st_uid != 0)
        return nncc_fail(NNCC_ERR_IO,
                         "JIT cache folder '%s' belongs to another user (uid %lu): code "
                         "they put there would run as you; use your own ($XDG_CACHE_HOME)",
                         jit->cache_dir, (unsigned long)st.st_uid);
    if (st.st_mode & (S_IWGRP | S_IWOTH))
        return nncc_fail(NNCC_ERR_IO,
                         "JIT cache folder '%s' is writable by other users (mode 0%o): code "
                         "they put there would run as you; make it private (chmod 700) or use "
                         "another ($XDG_CACHE_HOME)",
                         jit->cache_dir, (unsigned)(st.st_mode & 07777));
    return NNCC_OK;
}

/* ---- nncc_jit_compile -------------------------------------------------- */

/* Makes sure <cache>/include/<sha256 of header>/nncc.h exists; its folder
 * goes into incdir.  Versioned by content, so several nncc builds sharing
 * one cache never overwrite each other's header. */
static enum nncc_status ensure_header(const struct nncc_jit *jit, char *incdir, size_t size)
{
    char hex[NNCC_SHA256_HEX_SIZE];
    nncc_sha256_str(nncc_header_text, nncc_header_len, hex);
    if ((size_t)snprintf(incdir, size, "%s/include/%s", jit->cache_dir, hex) >= size)
        return nncc_fail(NNCC_ERR_IO, "cache path too long: '%s'", jit->cache_dir);
    char path[JIT_PATH_CAP];
    if ((size_t)snprintf(path, sizeof path, "%s/nncc.h", incdir) >= sizeof path)
        return nncc_fail(NNCC_ERR_IO, "cache path too long: '%s'", incdir);
    /* Compared with the embedded text, not only found: a damaged copy (an
     * interrupted write on a full disk) would break or change every compile. */
    if (is_regular_file(path)) {
        size_t len;
        char *text = read_quiet(path, &len);
        bool same = text && len == nncc_header_len && memcmp(text, nncc_header_text, len) == 0;
        free(text);
        if (same) return NNCC_OK;
        if (jit->verbose)
            fprintf(stderr, "nncc: jit: cache header '%s' differs from nncc's: rewriting it\n",
                    path);
    }

    int err = mkdir_p(incdir);
    if (err != 0)
        return nncc_fail(NNCC_ERR_IO, "cannot create cache folder '%s': %s", incdir,
                         strerror(err));
    return write_atomic(path, nncc_header_text, nncc_header_len);
}

/* The cache key: everything that can change the compiled object.  NUL bytes
 * separate the parts so that moving text from one part to the next changes
 * the key. */
/* With -march=native the object is only good for this processor: its model
 * and feature flags join the key, so a cache shared between machines (an
 * NFS home) never hands one machine another's code. */
static void hash_cpu(struct nncc_sha256 *s)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[8192];
    bool model = false, flags = false;
    while ((!model || !flags) && fgets(line, sizeof line, f)) {
        bool m = !model && strncmp(line, "model name", 10) == 0;
        bool fl = !flags && strncmp(line, "flags", 5) == 0;
        if (m || fl)
            nncc_sha256_update(s, line, strlen(line));
        model |= m;
        flags |= fl;
    }
    fclose(f);
}

/* `kind` tells the products apart: "so" and "exe" compiled from a text,
 * "file-so" and "file-exe" from a file keyed by its preprocessed text
 * (the same text, compiled as written, gives other diagnostics). */
static void cache_key(const struct nncc_jit *jit, const char *source, size_t len,
                      const char *flags, const char *link, const char *kind,
                      char key[NNCC_SHA256_HEX_SIZE])
{
    struct nncc_sha256 s;
    unsigned char digest[NNCC_SHA256_SIZE];
    nncc_sha256_init(&s);
    nncc_sha256_update(&s, source, len);
    nncc_sha256_update(&s, "", 1);
    nncc_sha256_update(&s, flags, strlen(flags));
    nncc_sha256_update(&s, "", 1);
    nncc_sha256_update(&s, kind, strlen(kind) + 1);
    nncc_sha256_update(&s, link, strlen(link));
    nncc_sha256_update(&s, "", 1);
    nncc_sha256_update(&s, jit->cc_version, strlen(jit->cc_version));
    nncc_sha256_update(&s, "", 1);
    nncc_sha256_update(&s, nncc_header_text, nncc_header_len);
    if (strstr(flags, "native"))
        hash_cpu(&s);
    nncc_sha256_final(&s, digest);
    nncc_sha256_hex(digest, key);
}

/* Counts the whitespace-separated words of s. */
static size_t count_words(const char *s)
{
    size_t n = 0;
    for (const char *p = s; *p;) {
        while (*p && isspace((unsigned char)*p)) p++;
        if (!*p) break;
        n++;
        while (*p && !isspace((unsigned char)*p)) p++;
    }
    return n;
}

/* Splits s in place on whitespace, appending the words to argv. */
static void split_words(char *s, char **argv, size_t *argc)
{
    for (char *p = s; *p;) {
        while (*p && isspace((unsigned char)*p)) p++;
        if (!*p) break;
        argv[(*argc)++] = p;
        while (*p && !isspace((unsigned char)*p)) p++;
        if (*p) *p++ = '\0';
    }
}

/* Runs `cc [-E] flags [-shared -fPIC] -I<nncc's header> args -o out_path
 * src_path link`: nncc's header folder comes before the caller's, so a stray
 * nncc.h next to a model file cannot shadow it. */
static int run_compiler(const struct nncc_jit *jit, const char *flags, const char *link,
                        bool exe, bool preprocess, const char *incdir,
                        const char *const *args, int n_args, const char *out_path,
                        const char *src_path, struct run_out *out)
{
    char *words = strdup(flags);
    char *link_words = strdup(link);
    size_t n_words = count_words(flags) + count_words(link) + (size_t)n_args;
    size_t inc_len = strlen(incdir) + 3;
    char *inc = malloc(inc_len);
    char **argv = calloc(n_words + 9, sizeof *argv);
    if (!words || !link_words || !inc || !argv) {
        free(words);
        free(link_words);
        free(inc);
        free(argv);
        return ENOMEM;
    }
    snprintf(inc, inc_len, "-I%s", incdir);

    size_t argc = 0;
    argv[argc++] = (char *)jit->cc;
    if (preprocess)
        argv[argc++] = "-E";
    split_words(words, argv, &argc);
    if (!exe && !preprocess) {
        argv[argc++] = "-shared";
        argv[argc++] = "-fPIC";
    }
    argv[argc++] = inc;
    for (int i = 0; i < n_args; i++)
        argv[argc++] = (char *)args[i];
    argv[argc++] = "-o";
    argv[argc++] = (char *)out_path;
    argv[argc++] = (char *)src_path;
    if (!preprocess)
        split_words(link_words, argv, &argc); /* libraries come after the source */
    argv[argc] = NULL;

    int err = run_capture(argv, out);
    free(words);
    free(link_words);
    free(inc);
    free(argv);
    return err;
}

/* What to compile: a text, or (path set) a file as written, with args (one
 * argument each) after nncc's header folder. */
struct compile_src {
    const char *text;
    size_t len;
    const char *path;
    const char *const *args;
    int n_args;
};

/* The message for a compiler run that failed, naming how it ended; the
 * diagnostics stay in *diag for the caller. */
static enum nncc_status compiler_failed(const struct nncc_jit *jit, const struct run_out *out,
                                        const char *diag)
{
    char how[64];
    describe_wstatus(out->wstatus, how, sizeof how);
    if (!diag) diag = "(no output)\n";
    size_t shown = strlen(diag);
    int cut = shown > JIT_MSG_DIAG_CAP ? JIT_MSG_DIAG_CAP : (int)shown;
    return nncc_fail(NNCC_ERR_COMPILE, "C compiler '%s' failed (%s):\n%.*s%s", jit->cc, how, cut,
                     diag, (size_t)cut < shown ? "\n[... more in the full diagnostics]\n" : "");
}

/* A file's preprocessed text (with `flags` and `args`, as its compile will
 * see them): what its cache key covers, so that a changed header changes
 * the key.  On a preprocessor error, its messages go to res->diagnostics. */
static enum nncc_status preprocess_file(struct nncc_jit *jit, const char *incdir,
                                        const struct compile_src *src, const char *flags,
                                        char **text, size_t *len, struct nncc_jit_result *res)
{
    *text = NULL;
    char tmp[JIT_PATH_CAP];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s/pre.tmp.XXXXXX", jit->cache_dir) >= sizeof tmp)
        return nncc_fail(NNCC_ERR_IO, "cache path too long: '%s'", jit->cache_dir);
    int fd = mkstemp(tmp);
    if (fd < 0)
        return nncc_fail(NNCC_ERR_IO, "cannot create '%s': %s", tmp, strerror(errno));
    close(fd);
    struct run_out out;
    int err = run_compiler(jit, flags, "", false, true, incdir, src->args, src->n_args, tmp,
                           src->path, &out);
    if (err != 0) {
        unlink(tmp);
        return nncc_fail(NNCC_ERR_COMPILE, "cannot run C compiler '%s': %s", jit->cc,
                         strerror(err));
    }
    if (!WIFEXITED(out.wstatus) || WEXITSTATUS(out.wstatus) != 0) {
        unlink(tmp);
        res->diagnostics = out.text;
        return compiler_failed(jit, &out, out.text);
    }
    free(out.text); /* warnings: the compile that follows repeats them */
    *text = nncc_read_file(tmp, len);
    unlink(tmp);
    return *text ? NNCC_OK : nncc_last_status();
}

static enum nncc_status compile(struct nncc_jit *jit, const struct compile_src *src,
                                const char *flags, const char *link, bool exe,
                                struct nncc_jit_result *res)
{
    if (!res) return nncc_fail(NNCC_ERR_ARG, "nncc_jit_compile: res is NULL");
    memset(res, 0, sizeof *res);
    if (!jit || !jit->cc[0] || (!src->path && !src->text && src->len > 0))
        return nncc_fail(NNCC_ERR_ARG, "nncc_jit_compile: %s",
                         !jit || !jit->cc[0] ? "toolchain not initialised" : "source is NULL");
    if (!flags) flags = "";
    if (!link) link = "";
    const char *ext = exe ? "exe" : "so";
    bool file = src->path != NULL;

    char incdir[JIT_PATH_CAP];
    enum nncc_status st = ensure_header(jit, incdir, sizeof incdir);
    if (st != NNCC_OK) return st;

    char key[NNCC_SHA256_HEX_SIZE];
    if (file) {
        char *text;
        size_t len;
        st = preprocess_file(jit, incdir, src, flags, &text, &len, res);
        if (st != NNCC_OK) goto fail;
        cache_key(jit, text, len, flags, link, exe ? "file-exe" : "file-so", key);
        free(text);
    } else {
        cache_key(jit, src->text ? src->text : "", src->len, flags, link, ext, key);
    }
    /* A file's warnings are kept next to its object and shown again on a
     * hit: the user sees the same messages whether or not a compiler ran. */
    char log_path[JIT_PATH_CAP];
    if ((size_t)snprintf(res->so_path, sizeof res->so_path, "%s/%s.%s", jit->cache_dir, key, ext) >=
            sizeof res->so_path ||
        (size_t)snprintf(log_path, sizeof log_path, "%s.log", res->so_path) >= sizeof log_path)
        return nncc_fail(NNCC_ERR_IO, "cache path too long: '%s'", jit->cache_dir);

    struct stat entry_st;
    if (lstat(res->so_path, &entry_st) == 0) {
        char why[300];
        if (entry_ok(res->so_path, key, why, sizeof why)) {
            res->cache_hit = true;
            if (file && is_regular_file(log_path))
                res->diagnostics = nncc_read_file(log_path, NULL);
            if (jit->verbose) fprintf(stderr, "nncc: jit: cache hit %.12s.%s\n", key, ext);
            return NNCC_OK;
        }
        if (jit->verbose)
            fprintf(stderr, "nncc: jit: cache entry %.12s.%s is bad (%s): rebuilding it\n", key,
                    ext, why);
    }

    /* A text stays in the cache next to its object: diagnostics name it,
     * and it is there to read when a compiled kernel misbehaves.  It is
     * rewritten on every miss rather than trusted: a damaged copy would
     * compile into other code.  It ends with the key (see entry_ok).  A
     * user's file is compiled where it is, so that messages point into it;
     * its key comes from a one-line header forced in with -include, which
     * moves none of the file's lines. */
    char c_path[JIT_PATH_CAP], tmp_so[JIT_PATH_CAP];
    if ((size_t)snprintf(c_path, sizeof c_path, "%s/%s.c", jit->cache_dir, key) >= sizeof c_path ||
        (size_t)snprintf(tmp_so, sizeof tmp_so, "%s/%s.%s.tmp.XXXXXX", jit->cache_dir, key, ext) >=
            sizeof tmp_so) {
        st = nncc_fail(NNCC_ERR_IO, "cache path too long: '%s'", jit->cache_dir);
        goto fail;
    }
    static const char fp_fmt[] =
        "\n/* nncc: the JIT cache key, checked when the object is loaded */\n"
        "extern const char nncc_cache_key[];\n"
        "__attribute__((visibility(\"default\"), used)) const char nncc_cache_key[] = "
        "\"%s\";\n";
    char fp_path[JIT_PATH_CAP];
    if ((size_t)snprintf(fp_path, sizeof fp_path, "%s/%s.key.h", jit->cache_dir, key) >=
        sizeof fp_path) {
        st = nncc_fail(NNCC_ERR_IO, "cache path too long: '%s'", jit->cache_dir);
        goto fail;
    }
    {
        size_t len = file ? 0 : src->len;
        size_t cap = len + sizeof fp_fmt + NNCC_SHA256_HEX_SIZE;
        char *fp_source = malloc(cap);
        if (!fp_source) {
            st = nncc_fail(NNCC_ERR_NOMEM, "out of memory");
            goto fail;
        }
        if (len)
            memcpy(fp_source, src->text, len);
        int n = snprintf(fp_source + len, cap - len, fp_fmt, key);
        st = write_atomic(file ? fp_path : c_path, fp_source, len + (size_t)n);
        free(fp_source);
        if (st != NNCC_OK) goto fail;
    }

    /* mkstemp() gives a name unique across processes and threads; the
     * compiler replaces the empty file. */
    int fd = mkstemp(tmp_so);
    if (fd < 0) {
        st = nncc_fail(NNCC_ERR_IO, "cannot create '%s': %s", tmp_so, strerror(errno));
        goto fail;
    }
    close(fd);

    /* A file's arguments, then the key header forced in before its text. */
    const char **args = malloc(sizeof *args * (size_t)(src->n_args + 2));
    if (!args) {
        unlink(tmp_so);
        st = nncc_fail(NNCC_ERR_NOMEM, "out of memory");
        goto fail;
    }
    int n_args = 0;
    for (int i = 0; i < src->n_args; i++)
        args[n_args++] = src->args[i];
    if (file) {
        args[n_args++] = "-include";
        args[n_args++] = fp_path;
    }
    struct run_out out;
    double t0 = now_s();
    int err = run_compiler(jit, flags, link, exe, false, incdir, args, n_args, tmp_so,
                           file ? src->path : c_path, &out);
    free(args);
    double elapsed = now_s() - t0;
    if (err != 0) {
        unlink(tmp_so);
        st = nncc_fail(NNCC_ERR_COMPILE, "cannot run C compiler '%s': %s", jit->cc,
                       strerror(err));
        goto fail;
    }
    res->diagnostics = out.text; /* warnings on success, errors on failure */
    if (res->diagnostics && out.len == 0) {
        free(res->diagnostics);
        res->diagnostics = NULL;
    }

    if (!WIFEXITED(out.wstatus) || WEXITSTATUS(out.wstatus) != 0) {
        unlink(tmp_so);
        st = compiler_failed(jit, &out, res->diagnostics);
        goto fail;
    }

    /* Readable by all, like any file a compiler writes (the folder keeps the
     * cache private); the hash file first, so that a reader never finds the
     * new object without it (it finds the old one with it and rebuilds). */
    chmod(tmp_so, 0755);
    st = write_entry_hash(tmp_so, res->so_path);
    if (st != NNCC_OK) {
        unlink(tmp_so);
        goto fail;
    }
    /* The log before the object: an object in place always has its log.  A
     * log that cannot be written only costs the warnings on later hits. */
    if (file && res->diagnostics && write_atomic(log_path, res->diagnostics, out.len) != NNCC_OK)
        nncc_clear_error();
    if (rename(tmp_so, res->so_path) != 0) {
        int e = errno;
        unlink(tmp_so);
        st = nncc_fail(NNCC_ERR_IO, "cannot rename '%s' to '%s': %s", tmp_so, res->so_path,
                       strerror(e));
        goto fail;
    }
    res->compile_s = elapsed;
    if (jit->verbose)
        fprintf(stderr, "nncc: jit: compiled %.12s.%s in %.3f s\n", key, ext, elapsed);
    sweep_stale_temps(jit); /* writing an entry is rare enough to pay for a scan */
    return NNCC_OK;

fail:
    res->so_path[0] = '\0'; /* nothing to load */
    return st;
}

enum nncc_status nncc_jit_compile(struct nncc_jit *jit, const char *source, size_t len,
                                  const char *flags, struct nncc_jit_result *res)
{
    struct compile_src src = {.text = source, .len = len};
    return compile(jit, &src, flags, NULL, false, res);
}

enum nncc_status nncc_jit_compile_exe(struct nncc_jit *jit, const char *source, size_t len,
                                      const char *flags, const char *link,
                                      struct nncc_jit_result *res)
{
    struct compile_src src = {.text = source, .len = len};
    return compile(jit, &src, flags, link, true, res);
}

enum nncc_status nncc_jit_compile_file(struct nncc_jit *jit, const char *path,
                                       const char *const *args, int n_args, const char *flags,
                                       const char *link, bool exe, struct nncc_jit_result *res)
{
    if (!path) {
        if (res) memset(res, 0, sizeof *res);
        return nncc_fail(NNCC_ERR_ARG, "nncc_jit_compile_file: path is NULL");
    }
    struct compile_src src = {.path = path, .args = args, .n_args = n_args};
    return compile(jit, &src, flags, link, exe, res);
}

/* ---- Loading ----------------------------------------------------------- */

enum nncc_status nncc_jit_preprocess(struct nncc_jit *jit, const char *path,
                                     const char *const *args, int n_args, char **text,
                                     size_t *len, char **diagnostics)
{
    *text = NULL;
    *len = 0;
    if (diagnostics)
        *diagnostics = NULL;
    char incdir[JIT_PATH_CAP], inc[JIT_PATH_CAP + 3], tmp[JIT_PATH_CAP];
    enum nncc_status st = ensure_header(jit, incdir, sizeof incdir);
    if (st != NNCC_OK)
        return st;
    snprintf(inc, sizeof inc, "-I%s", incdir);
    if ((size_t)snprintf(tmp, sizeof tmp, "%s/pre.tmp.XXXXXX", jit->cache_dir) >= sizeof tmp)
        return nncc_fail(NNCC_ERR_IO, "cache path too long: '%s'", jit->cache_dir);
    int fd = mkstemp(tmp);
    if (fd < 0)
        return nncc_fail(NNCC_ERR_IO, "cannot create '%s': %s", tmp, strerror(errno));
    close(fd);
    char **argv = calloc((size_t)n_args + 8, sizeof *argv);
    if (!argv) {
        unlink(tmp);
        return nncc_fail(NNCC_ERR_NOMEM, "out of memory");
    }
    size_t argc = 0;
    argv[argc++] = jit->cc;
    argv[argc++] = "-E";
    argv[argc++] = inc; /* nncc's own header first: a stray nncc.h cannot shadow it */
    for (int i = 0; i < n_args; i++)
        argv[argc++] = (char *)args[i];
    argv[argc++] = "-o";
    argv[argc++] = tmp;
    argv[argc++] = (char *)path;
    struct run_out out;
    int err = run_capture(argv, &out);
    free(argv);
    if (err != 0) {
        unlink(tmp);
        return nncc_fail(NNCC_ERR_COMPILE, "cannot run C compiler '%s': %s", jit->cc,
                         strerror(err));
    }
    if (!WIFEXITED(out.wstatus) || WEXITSTATUS(out.wstatus) != 0) {
        unlink(tmp);
        st = nncc_fail(NNCC_ERR_COMPILE, "C compiler '%s' failed on '%s':\n%.*s", jit->cc, path,
                       JIT_MSG_DIAG_CAP, out.text ? out.text : "");
        if (diagnostics)
            *diagnostics = out.text;
        else
            free(out.text);
        return st;
    }
    free(out.text);
    *text = nncc_read_file(tmp, len);
    unlink(tmp);
    return *text ? NNCC_OK : nncc_last_status();
}

/* A bad entry loses its hash file, so that the next compile rebuilds it
 * even when only the check after dlopen() told it was bad. */
static void *refuse_entry(const char *so_path, const char *why)
{
    char hash_path[JIT_PATH_CAP];
    if ((size_t)snprintf(hash_path, sizeof hash_path, "%s" JIT_HASH_SUFFIX, so_path) <
        sizeof hash_path)
        unlink(hash_path);
    return NNCC_FAIL_NULL(NNCC_ERR_COMPILE,
                          "JIT cache entry '%s' is damaged (%s): not loaded; the next compile "
                          "rebuilds it",
                          so_path, why);
}

void *nncc_jit_load(const char *so_path)
{
    if (!so_path) return NNCC_FAIL_NULL(NNCC_ERR_ARG, "nncc_jit_load: path is NULL");
    /* A cache entry is checked before it is mapped, then by its symbol. */
    char key[NNCC_SHA256_HEX_SIZE], why[300];
    bool entry = key_of_path(so_path, key);
    if (entry && !entry_ok(so_path, key, why, sizeof why)) return refuse_entry(so_path, why);
    void *handle = dlopen(so_path, RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        const char *err = dlerror();
        return NNCC_FAIL_NULL(NNCC_ERR_COMPILE, "cannot load '%s': %s", so_path,
                              err ? err : "unknown dlopen error");
    }
    if (entry) {
        dlerror();
        const char *stored = dlsym(handle, "nncc_cache_key");
        if (!stored || strncmp(stored, key, NNCC_SHA256_HEX_SIZE) != 0) {
            snprintf(why, sizeof why, "its nncc_cache_key is %s%.64s%s, not its name's key",
                     stored ? "'" : "", stored ? stored : "missing", stored ? "'" : "");
            dlclose(handle);
            return refuse_entry(so_path, why);
        }
    }
    return handle;
}

void *nncc_jit_symbol(void *handle, const char *name, const char *so_path)
{
    if (!handle || !name)
        return NNCC_FAIL_NULL(NNCC_ERR_ARG, "nncc_jit_symbol: %s is NULL",
                              !handle ? "handle" : "name");
    /* A symbol may legitimately be NULL; dlerror() is what tells failure. */
    dlerror();
    void *sym = dlsym(handle, name);
    if (dlerror() != NULL || !sym)
        return NNCC_FAIL_NULL(NNCC_ERR_COMPILE, "symbol '%s' not found in '%s'", name,
                              so_path ? so_path : "(shared object)");
    return sym;
}

void nncc_jit_unload(void *handle)
{
    if (handle) dlclose(handle);
}

/* ---- Files ------------------------------------------------------------- */

char *nncc_read_file(const char *path, size_t *len)
{
    size_t n = 0;
    if (len) *len = 0;
    if (!path) return NNCC_FAIL_NULL(NNCC_ERR_ARG, "nncc_read_file: path is NULL");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return NNCC_FAIL_NULL(NNCC_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    int err;
    char *buf = read_fd(fd, 4095, &n, &err);
    close(fd);
    if (!buf)
        return err == ENOMEM
                   ? NNCC_FAIL_NULL(NNCC_ERR_NOMEM, "out of memory reading '%s'", path)
                   : NNCC_FAIL_NULL(NNCC_ERR_IO, "cannot read '%s': %s", path, strerror(err));
    if (len) *len = n;
    return buf;
}
