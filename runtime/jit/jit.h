/*
 * jit.h — internal interface of the JIT toolchain (runtime/jit/jit.c).
 *
 * The toolchain turns one C translation unit (a string) into a loaded shared
 * object.  It finds a compiler ($NNCC_CC, else clang, else cc), compiles into a
 * content-addressed cache ($XDG_CACHE_HOME/nncc, else ~/.cache/nncc; key =
 * SHA-256 of source + flags + compiler identity + nncc's public header), writes
 * atomically (temporary file + rename, so two processes compiling the same
 * source at once both succeed), dlopen()s the result and looks up symbols.
 * Each <key>.so or <key>.exe has a hash file beside it (<key>.so.sha256,
 * <key>.exe.sha256) and holds its key (`nncc_cache_key`); an entry that
 * fails either check is rebuilt, never loaded or run.  The cache is per user
 * (a folder others can write is refused: they could plant code).
 *
 * The public header is embedded in the library (nncc_header_text) and written
 * into the cache, so generated and user code always compiles against the very
 * header of the library that loads it, wherever nncc is installed.
 *
 * All state lives in a struct nncc_jit the caller owns; nothing is global.
 */
#ifndef NNCC_RUNTIME_JIT_H
#define NNCC_RUNTIME_JIT_H

#include <stdbool.h>
#include <stddef.h>
#include "nncc.h"

struct nncc_jit {
    char cc[256];          /* compiler command as found ("clang", "/usr/bin/cc", …) */
    char cc_version[512];  /* the compiler file's identity (path, size, mtime,
                              inode), part of the cache key */
    char cache_dir[1024];  /* e.g. /root/.cache/nncc */
    bool verbose;          /* NNCC_VERBOSE set: report compile time and cache hits */
};

/* What one compile did; filled by nncc_jit_compile. */
struct nncc_jit_result {
    char so_path[1200];    /* the cached shared object (or executable) */
    bool cache_hit;        /* true when no compiler ran */
    double compile_s;      /* wall time of the compiler run (0 on a hit) */
    char *diagnostics;     /* compiler stderr (malloc'd, may be NULL); caller frees */
};

/* Finds the compiler and the cache folder.  Fails (NNCC_ERR_COMPILE) when no
 * compiler runs, (NNCC_ERR_IO) when the cache folder cannot be created. */
enum nncc_status nncc_jit_init(struct nncc_jit *jit);

/* Compiles `source` with `flags` (extra compiler arguments, one string, may be
 * NULL; -shared -fPIC and the include path for nncc.h are always added) into a
 * cached shared object.  On a compiler error returns NNCC_ERR_COMPILE, with
 * the diagnostics in res->diagnostics and in nncc_last_error(). */
enum nncc_status nncc_jit_compile(struct nncc_jit *jit, const char *source, size_t len,
                                  const char *flags, struct nncc_jit_result *res);

/* The same for a program: compiles and links `source` into an executable
 * (res->so_path names it), with `link` (libraries, -L, -Wl options) placed
 * after the source. */
enum nncc_status nncc_jit_compile_exe(struct nncc_jit *jit, const char *source, size_t len,
                                      const char *flags, const char *link,
                                      struct nncc_jit_result *res);

/* Compiles the C file at `path` as written, so that the compiler's messages
 * (res->diagnostics: errors on failure, warnings on success) point at its
 * own lines and columns.  The arguments are `flags` (one string), -shared
 * -fPIC unless `exe`, nncc's header folder, `args` (one argument each, e.g.
 * -I folders), the file, then `link`.  The cache key covers the file's
 * preprocessed text (made with the same flags and args), so a change in any
 * header it includes recompiles it; its warnings are kept in the cache and
 * given again on a hit.  A preprocessor or compiler error is
 * NNCC_ERR_COMPILE. */
enum nncc_status nncc_jit_compile_file(struct nncc_jit *jit, const char *path,
                                       const char *const *args, int n_args, const char *flags,
                                       const char *link, bool exe, struct nncc_jit_result *res);

/* Runs the preprocessor on a file (nncc's header folder first, then args,
 * each one argument) into a malloc'd text.  Compiling that text makes the
 * cache key cover every header the file includes.  On failure the compiler's
 * messages go to *diagnostics (malloc'd; may be NULL). */
enum nncc_status nncc_jit_preprocess(struct nncc_jit *jit, const char *path,
                                     const char *const *args, int n_args, char **text,
                                     size_t *len, char **diagnostics);

/* dlopen()s a shared object (RTLD_NOW|RTLD_LOCAL).  NULL + error on failure.
 * A cache entry (a file named <64 hex digits>.so) is checked first: its hash
 * file and key before it is mapped, its nncc_cache_key symbol after; a bad
 * one is refused (NNCC_ERR_COMPILE, "JIT cache entry '...' is damaged") and
 * loses its hash file, so that the next compile rebuilds it. */
void *nncc_jit_load(const char *so_path);

/* dlsym(); NULL + error (naming the symbol and file) when it is missing. */
void *nncc_jit_symbol(void *handle, const char *name, const char *so_path);

void nncc_jit_unload(void *handle);

/* The text of include/nncc.h, embedded at build time (build/nncc_header.c). */
extern const char nncc_header_text[];
extern const size_t nncc_header_len;

/* The first executable `prog` in a folder of $PATH (/usr/bin:/bin when
 * unset), written to found; false (found empty) when there is none. */
bool nncc_find_on_path(const char *prog, char *found, size_t size);

/* Reads a whole file into a malloc'd, NUL-terminated buffer (len optional). */
char *nncc_read_file(const char *path, size_t *len);

#endif
