/*
 * keras_h5_tree.c — reads a read-only HDF5 file in a forked child process
 * and answers keras_h5.h's read functions from what the child sent.
 *
 * Why: libhdf5 1.10.8 (Debian 12) is not safe on hostile files.  Fuzzing
 * (tests/fuzz/fuzz_keras.c) found, within seconds, SEGVs and heap overflows
 * in H5Aread -> H5T__conv_vlen -> H5HG_read (variable-length strings,
 * exactly how Keras stores model_config), in H5Aexists (object header
 * messages) and in H5Literate (H5G__stab_iterate, symbol tables); infinite
 * loops in H5HG__protect; and mallocs of 3 to 16 GB sized by the file.
 * None of these can be checked before the call.  So a child process does
 * every libhdf5 read, and the caller's process only parses a stream whose
 * every length and count it checks (keras_h5_tree.h gives the format).
 *
 * Contract: kh5_tree_load(data, size, label) forks.  The child resets its
 * own SIGALRM, SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT and SIGPIPE to the
 * default action and unblocks them, sets RLIMIT_CORE 0, caps its memory
 * (RLIMIT_DATA: its VmData now plus 16 × the image + 256 MiB, relative so
 * that a sanitizer's already mapped shadow does not count), arms
 * alarm(KH5_CHILD_SECONDS, or NNCC_KH5_SECONDS from the environment),
 * walks the whole file (kh5_child_walk), writes
 * the stream with write(2) and _exit()s: it never returns into the caller's
 * code, runs no atexit handler and flushes no stdio buffer of the parent.
 * The parent reads the pipe to its end (bounded: 8 × the image + 512 MiB),
 * then waits for that one pid.  A child killed by a signal, exiting with a
 * status, or sending a malformed stream is NNCC_ERR_FORMAT naming the
 * label and the signal ("killed by SIGSEGV"; SIGALRM: "took longer than N
 * s"); errors the child found itself keep their own message.  The parent
 * installs no signal handler and changes no disposition.
 *
 * Where answers differ from reading in-process (only on damaged files, or
 * past limits no Keras file reaches): a file whose root group cannot be
 * opened, or with more than KH5_MAX_OBJECTS objects (a hard-link cycle),
 * fails at open; a path through an object that is not a listable group
 * is "no object" without libhdf5's reason; objects more than
 * KH5_MAX_DEPTH groups deep are listed but not read; a dataset's values
 * are refused (at kh5_read_f32) once the file's values exceed 4 bytes per
 * byte of file + 64 MiB (possible only for compressed or never-written
 * datasets, which Keras does not write).
 *
 * Costs: one fork per opened file (a few ms, more for a large parent), the
 * file's values sent once through a pipe as float32 and kept in memory
 * while the file is open (kh5_open also reads the file into memory first).
 *
 * Threads: only the forking thread exists in the child, which runs libhdf5
 * and malloc, not async-signal-safe.  glibc's malloc is made safe by its
 * fork handlers; libhdf5's own lock (Debian builds it thread-safe) is not:
 * if another thread of the host is inside libhdf5 at the moment of the
 * fork, the child can block on that lock and is killed by its alarm, and
 * the open fails ("took longer than N s").  A host that uses libhdf5 from
 * other threads should not open Keras files concurrently with that.
 *
 * Under sanitizers (the fuzz build), the child clears the sanitizer's death
 * callback (libFuzzer's, which would save the input as a crash of the
 * parent): a report in the child only makes the child exit non-zero.  Its
 * memory cap is below libFuzzer's -malloc_limit_mb, so a huge malloc fails
 * in the child before libFuzzer's malloc hook sees it.
 */
#define _GNU_SOURCE
#include "runtime/io/keras_h5_tree.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ir/error.h"
#include "runtime/io/keras_h5.h"

#if defined(__SANITIZE_ADDRESS__)
#define KH5_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KH5_ASAN 1
#endif
#endif
#ifdef KH5_ASAN
#include <sanitizer/common_interface_defs.h>
#endif

/* From keras_h5.c's HDF5 type classes (H5Tpublic.h), for the tree's
 * answers without including hdf5.h here. */
enum { CLS_INTEGER = 0, CLS_FLOAT = 1, CLS_STRING = 3 };

/* ---- The child's writer ---- */

static void out_write(struct kh5_out *o, const void *p, size_t n)
{
    const unsigned char *b = p;
    while (n > 0 && !o->failed) {
        ssize_t r = write(o->fd, b, n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            o->failed = true;
            break;
        }
        b += r;
        n -= (size_t)r;
    }
}

void kh5_flush(struct kh5_out *o)
{
    out_write(o, o->buf, o->n);
    o->n = 0;
}

void kh5_put(struct kh5_out *o, const void *p, size_t n)
{
    if (o->n + n > sizeof o->buf) kh5_flush(o);
    if (n > sizeof o->buf) {
        out_write(o, p, n);
        return;
    }
    memcpy(o->buf + o->n, p, n);
    o->n += n;
}

void kh5_put_u8(struct kh5_out *o, unsigned v)
{
    unsigned char b = (unsigned char)v;
    kh5_put(o, &b, 1);
}

void kh5_put_u32(struct kh5_out *o, uint32_t v) { kh5_put(o, &v, sizeof v); }
void kh5_put_i64(struct kh5_out *o, int64_t v) { kh5_put(o, &v, sizeof v); }

void kh5_put_str(struct kh5_out *o, const char *s)
{
    size_t n = strlen(s) + 1;
    kh5_put_u32(o, (uint32_t)n);
    kh5_put(o, s, n);
}

void kh5_put_err(struct kh5_out *o, enum nncc_status st, int kind, const char *tail)
{
    kh5_put_u32(o, (uint32_t)st);
    kh5_put_u8(o, (unsigned)kind);
    kh5_put_str(o, tail);
}

/* ---- The child ---- */

/* VmData of this process in bytes (0 when unknown), with open/read only. */
static uint64_t vm_data(void)
{
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    char buf[8192];
    size_t n = 0;
    ssize_t r;
    while (n < sizeof buf - 1 && ((r = read(fd, buf + n, sizeof buf - 1 - n)) > 0 ||
                                  (r < 0 && errno == EINTR)))
        if (r > 0) n += (size_t)r;
    close(fd);
    buf[n] = 0;
    const char *p = strstr(buf, "\nVmData:");
    if (!p) return 0;
    return strtoull(p + 8, NULL, 10) * 1024; /* "VmData:   1234 kB" */
}

/* The child's time limit in seconds: NNCC_KH5_SECONDS (1 to 86400) when
 * set, else KH5_CHILD_SECONDS.  Read at each open, never stored. */
static unsigned child_seconds(void)
{
    const char *e = getenv("NNCC_KH5_SECONDS");
    char *end = NULL;
    long v = e ? strtol(e, &end, 10) : 0;
    return e && end != e && !*end && v >= 1 && v <= 86400 ? (unsigned)v : KH5_CHILD_SECONDS;
}

static void child_main(int fd, const void *data, size_t size, const char *label,
                       unsigned seconds)
{
    /* Default actions: a crash or the alarm ends the child, whatever
     * handlers the host (or libFuzzer) installed. */
    static const int sigs[] = {SIGALRM, SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGPIPE};
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    sigset_t set;
    sigemptyset(&set);
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        sigaction(sigs[i], &sa, NULL);
        sigaddset(&set, sigs[i]);
    }
    sigprocmask(SIG_UNBLOCK, &set, NULL);
#ifdef KH5_ASAN
    __sanitizer_set_death_callback(NULL);
#endif
    struct rlimit core = {0, 0};
    setrlimit(RLIMIT_CORE, &core);
    uint64_t now = vm_data();
    if (now > 0) {
        uint64_t cap = now + 16 * (uint64_t)size + ((uint64_t)256 << 20);
        struct rlimit cur;
        if (getrlimit(RLIMIT_DATA, &cur) == 0 &&
            (cur.rlim_cur == RLIM_INFINITY || cur.rlim_cur > cap)) {
            struct rlimit lim = {(rlim_t)cap, cur.rlim_max};
            if (cur.rlim_max != RLIM_INFINITY && cur.rlim_max < cap) lim.rlim_max = cap;
            setrlimit(RLIMIT_DATA, &lim);
        }
    }
    alarm(seconds);
    struct kh5_out *out = malloc(sizeof *out); /* 64 KiB: not on a thread's stack */
    if (!out) _exit(5);
    out->fd = fd;
    out->failed = false;
    out->n = 0;
    kh5_child_walk(data, size, label, out);
    kh5_flush(out);
    _exit(out->failed ? 3 : 0);
}

/* ---- The tree ---- */

struct terr {
    enum nncc_status status;
    int kind;
    const char *tail;
};

struct tattr {
    const char *name;
    bool bad; /* err: attr_open failed */
    struct terr err;
    int cls, rank;
    int64_t count;
    int sstate; /* 0 not read, 1 strings, 2 serr */
    uint32_t ns;
    const char **s;
    struct terr serr;
};

struct tnode;
struct tlink {
    const char *name;
    int ltype;
    struct tnode *node;
};

struct tnode {
    int type;
    struct terr err; /* KH5T_BROKEN */
    bool attrs_bad;
    struct terr attrs_err;
    uint32_t nattrs;
    struct tattr *attrs;
    /* A group. */
    bool list_bad;
    struct terr list_err;
    uint32_t nlinks;
    struct tlink *links;
    struct tlink **sorted; /* by name, for lookups */
    /* A dataset. */
    bool shape_bad, class_bad;
    struct terr shape_err, class_err;
    struct nncc_shape shape;
    int64_t count;
    int vstate; /* 0 none, 1 values, 2 verr */
    const unsigned char *values;
    struct terr verr;
    int sstate; /* 0 not one element, 1 scalar, 2 scerr */
    bool is_int;
    int64_t iv;
    double dv;
    struct terr scerr;
};

struct kh5_tree {
    unsigned char *stream; /* strings and values point into it */
    struct tnode *root;
};

/* The parser: every read checks what is left. */
struct parse {
    const unsigned char *p, *end;
    bool bad;
    long nodes;
    struct terr fatal;
    bool is_fatal;
};

static bool need(struct parse *ps, size_t n)
{
    if (ps->bad || (size_t)(ps->end - ps->p) < n) {
        ps->bad = true;
        return false;
    }
    return true;
}

static unsigned get_u8(struct parse *ps)
{
    if (!need(ps, 1)) return 0;
    return *ps->p++;
}

static uint32_t get_u32(struct parse *ps)
{
    uint32_t v = 0;
    if (need(ps, 4)) memcpy(&v, ps->p, 4), ps->p += 4;
    return v;
}

static int64_t get_i64(struct parse *ps)
{
    int64_t v = 0;
    if (need(ps, 8)) memcpy(&v, ps->p, 8), ps->p += 8;
    return v;
}

static const char *get_str(struct parse *ps)
{
    uint32_t n = get_u32(ps);
    if (n == 0 || !need(ps, n)) {
        ps->bad = true;
        return "";
    }
    const char *s = (const char *)ps->p;
    if (s[n - 1] != 0 || memchr(s, 0, n - 1)) {
        ps->bad = true;
        return "";
    }
    ps->p += n;
    return s;
}

static void get_err(struct parse *ps, struct terr *e)
{
    uint32_t st = get_u32(ps);
    e->kind = (int)get_u8(ps);
    e->tail = get_str(ps);
    if (st == NNCC_OK || st > NNCC_ERR_UNSUPPORTED || e->kind >= KH5_K_COUNT) ps->bad = true;
    e->status = (enum nncc_status)st;
}

/* A count of items of at least `min_bytes` each, checked against what is
 * left of the stream (so that no allocation exceeds the stream's size). */
static uint32_t get_count(struct parse *ps, size_t min_bytes, uint32_t max)
{
    uint32_t n = get_u32(ps);
    if (n > max || (size_t)(ps->end - ps->p) / min_bytes < n) ps->bad = true;
    return ps->bad ? 0 : n;
}

static void free_node(struct tnode *n)
{
    if (!n) return;
    for (uint32_t i = 0; i < n->nattrs; i++) free(n->attrs[i].s);
    free(n->attrs);
    for (uint32_t i = 0; i < n->nlinks; i++) free_node(n->links[i].node);
    free(n->links);
    free(n->sorted);
    free(n);
}

static void parse_attrs(struct parse *ps, struct tnode *n)
{
    if (get_u8(ps)) {
        n->attrs_bad = true;
        get_err(ps, &n->attrs_err);
        return;
    }
    uint32_t na = get_count(ps, 6, KH5_MAX_CHILDREN);
    if (ps->bad) return;
    if (na && !(n->attrs = calloc(na, sizeof *n->attrs))) {
        ps->bad = true;
        return;
    }
    n->nattrs = na;
    for (uint32_t i = 0; i < na && !ps->bad; i++) {
        struct tattr *a = &n->attrs[i];
        a->name = get_str(ps);
        if ((a->bad = get_u8(ps) != 0)) {
            get_err(ps, &a->err);
            continue;
        }
        a->cls = (int)get_u32(ps);
        a->rank = (int)get_u32(ps);
        a->count = get_i64(ps);
        if (a->count < 0 || a->count > KH5_MAX_CHILDREN || a->rank < -1 || a->rank > 32)
            ps->bad = true;
        bool want = a->cls == CLS_STRING && (a->count == 1 || a->rank == 1);
        a->sstate = (int)get_u8(ps);
        if (a->sstate > 2 || (a->sstate == 0) == want) ps->bad = true;
        if (a->sstate == 2) get_err(ps, &a->serr);
        if (a->sstate != 1 || ps->bad) continue;
        uint32_t ns = get_count(ps, 5, KH5_MAX_CHILDREN);
        if (ps->bad || ns != (uint32_t)a->count) {
            ps->bad = true;
            continue;
        }
        if (!(a->s = calloc((size_t)ns + 1, sizeof *a->s))) {
            ps->bad = true;
            continue;
        }
        a->ns = ns;
        for (uint32_t k = 0; k < ns; k++) a->s[k] = get_str(ps);
    }
}

static int cmp_link(const void *a, const void *b)
{
    return strcmp((*(struct tlink *const *)a)->name, (*(struct tlink *const *)b)->name);
}

static struct tnode *parse_node(struct parse *ps, int depth);

static void parse_group(struct parse *ps, struct tnode *n, int depth)
{
    if (get_u8(ps)) {
        n->list_bad = true;
        get_err(ps, &n->list_err);
        return;
    }
    uint32_t nl = get_count(ps, 6, KH5_MAX_CHILDREN);
    if (ps->bad) return;
    if (nl && (!(n->links = calloc(nl, sizeof *n->links)) ||
               !(n->sorted = calloc(nl, sizeof *n->sorted)))) {
        ps->bad = true;
        return;
    }
    for (uint32_t i = 0; i < nl && !ps->bad && !ps->is_fatal; i++) {
        struct tlink *l = &n->links[i];
        n->nlinks = i + 1;
        l->name = get_str(ps);
        l->ltype = (int)get_u8(ps);
        if (l->ltype > KH5T_UNKNOWN) ps->bad = true;
        if (l->ltype == KH5T_HARD && !ps->bad) l->node = parse_node(ps, depth + 1);
        n->sorted[i] = l;
    }
    if (n->nlinks > 0 && !ps->bad && !ps->is_fatal) /* qsort wants no NULL, even for 0 */
        qsort(n->sorted, n->nlinks, sizeof *n->sorted, cmp_link);
}

static void parse_dataset(struct parse *ps, struct tnode *n)
{
    if ((n->shape_bad = get_u8(ps) != 0)) {
        get_err(ps, &n->shape_err);
        return;
    }
    uint32_t rank = get_u32(ps);
    if (rank > NNCC_MAX_RANK) {
        ps->bad = true;
        return;
    }
    n->shape.rank = (int)rank;
    int64_t c = 1;
    for (uint32_t i = 0; i < rank; i++) {
        n->shape.dim[i] = get_i64(ps);
        if (n->shape.dim[i] < 0 || n->shape.dim[i] > KH5_MAX_ELEMENTS) ps->bad = true;
        else if (!ps->bad && c >= 0)
            c = c * n->shape.dim[i] > KH5_MAX_ELEMENTS ? -1 : c * n->shape.dim[i];
    }
    n->count = get_i64(ps);
    if (ps->bad || c < 0 || c != n->count) {
        ps->bad = true;
        return;
    }
    if ((n->class_bad = get_u8(ps) != 0)) {
        get_err(ps, &n->class_err);
        return;
    }
    n->vstate = (int)get_u8(ps);
    if (n->vstate > 2 || (n->vstate == 0) != (n->count == 0)) ps->bad = true;
    if (n->vstate == 2) get_err(ps, &n->verr);
    if (n->vstate == 1 && need(ps, (size_t)n->count * 4)) {
        n->values = ps->p;
        ps->p += (size_t)n->count * 4;
    }
    n->sstate = (int)get_u8(ps);
    if (n->sstate > 2 || (n->sstate == 0) != (n->count != 1)) ps->bad = true;
    if (n->sstate == 2) get_err(ps, &n->scerr);
    if (n->sstate == 1) {
        n->is_int = get_u8(ps) != 0;
        n->iv = get_i64(ps);
        if (need(ps, 8)) memcpy(&n->dv, ps->p, 8), ps->p += 8;
    }
}

static struct tnode *parse_node(struct parse *ps, int depth)
{
    if (ps->bad || depth > KH5_MAX_DEPTH + 1 || ++ps->nodes > KH5_MAX_OBJECTS + 1) {
        ps->bad = true;
        return NULL;
    }
    unsigned type = get_u8(ps);
    if (type == KH5T_FATAL) {
        get_err(ps, &ps->fatal);
        ps->is_fatal = !ps->bad;
        return NULL;
    }
    if (type > KH5T_DEEP) ps->bad = true;
    struct tnode *n = ps->bad ? NULL : calloc(1, sizeof *n);
    if (!n) {
        ps->bad = true;
        return NULL;
    }
    n->type = (int)type;
    if (type == KH5T_BROKEN) get_err(ps, &n->err);
    if (type == KH5T_BROKEN || type == KH5T_DEEP) return n;
    parse_attrs(ps, n);
    if (type == KH5T_GROUP && !ps->bad) parse_group(ps, n, depth);
    if (type == KH5T_DATASET && !ps->bad) parse_dataset(ps, n);
    return n;
}

void kh5_tree_free(struct kh5_tree *t)
{
    if (!t) return;
    free_node(t->root);
    free(t->stream);
    free(t);
}

/* ---- Fork, read, wait ---- */

static const char *sig_name(int sig, char *buf, size_t size)
{
    switch (sig) {
    case SIGSEGV: return "SIGSEGV";
    case SIGBUS: return "SIGBUS";
    case SIGABRT: return "SIGABRT";
    case SIGILL: return "SIGILL";
    case SIGFPE: return "SIGFPE";
    case SIGKILL: return "SIGKILL";
    case SIGPIPE: return "SIGPIPE";
    case SIGXCPU: return "SIGXCPU";
    case SIGTERM: return "SIGTERM";
    default: snprintf(buf, size, "signal %d", sig); return buf;
    }
}

#define DAMAGED "it is damaged or not an HDF5 file Keras wrote"

struct kh5_tree *kh5_tree_load(const void *data, size_t size, const char *label)
{
    unsigned seconds = child_seconds();
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0)
        return NNCC_FAIL_NULL(NNCC_ERR_IO, "'%s': cannot make a pipe to read it: %s", label,
                              strerror(errno));
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(fds[0]);
        close(fds[1]);
        return NNCC_FAIL_NULL(NNCC_ERR_IO, "'%s': cannot fork a process to read it: %s", label,
                              strerror(e));
    }
    if (pid == 0) {
        close(fds[0]);
        child_main(fds[1], data, size, label, seconds);
        _exit(4); /* not reached */
    }
    close(fds[1]);
    /* Read to the end (the child blocks on a full pipe until then). */
    uint64_t bound64 = 8 * (uint64_t)size + ((uint64_t)512 << 20);
    size_t bound = bound64 > SIZE_MAX / 2 ? SIZE_MAX / 2 : (size_t)bound64;
    size_t cap = 1 << 16, len = 0;
    unsigned char *buf = malloc(cap);
    bool too_big = false, nomem = !buf;
    int rerr = 0;
    while (buf && !too_big && !nomem) {
        if (len == cap) {
            size_t ncap = cap * 2 > bound ? bound + 1 : cap * 2;
            unsigned char *nb = ncap > cap ? realloc(buf, ncap) : NULL;
            if (!nb) {
                nomem = ncap > cap;
                too_big = !nomem;
                break;
            }
            buf = nb;
            cap = ncap;
        }
        ssize_t r = read(fds[0], buf + len, cap - len);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            rerr = errno;
            break;
        }
        if (r == 0) break;
        len += (size_t)r;
        if (len > bound) too_big = true;
    }
    if (too_big || nomem || rerr) kill(pid, SIGKILL);
    close(fds[0]);
    int ws = 0;
    while (waitpid(pid, &ws, 0) < 0 && errno == EINTR) {
    }
    char sb[32];
    struct kh5_tree *t = NULL;
    if (nomem) {
        nncc_fail(NNCC_ERR_NOMEM, "'%s': out of memory reading what libhdf5 read", label);
    } else if (rerr) {
        nncc_fail(NNCC_ERR_IO, "'%s': cannot read from the reading process: %s", label,
                  strerror(rerr));
    } else if (too_big) {
        nncc_fail(NNCC_ERR_FORMAT,
                  "'%s': libhdf5 could not read the file (it produced more than %zu bytes): "
                  DAMAGED, label, bound);
    } else if (WIFSIGNALED(ws) && WTERMSIG(ws) == SIGALRM) {
        nncc_fail(NNCC_ERR_FORMAT,
                  "'%s': libhdf5 could not read the file (it took longer than %u s): " DAMAGED,
                  label, seconds);
    } else if (WIFSIGNALED(ws)) {
        nncc_fail(NNCC_ERR_FORMAT,
                  "'%s': libhdf5 could not read the file (killed by %s%s): " DAMAGED, label,
                  sig_name(WTERMSIG(ws), sb, sizeof sb),
                  WTERMSIG(ws) == SIGKILL ? ", perhaps out of memory" : "");
    } else if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0) {
        nncc_fail(NNCC_ERR_FORMAT,
                  "'%s': libhdf5 could not read the file (its process exited with status %d, "
                  "after a sanitizer report or running out of memory): " DAMAGED,
                  label, WIFEXITED(ws) ? WEXITSTATUS(ws) : -1);
    } else if (!(t = calloc(1, sizeof *t))) {
        nncc_fail(NNCC_ERR_NOMEM, "'%s': out of memory", label);
    } else {
        t->stream = buf;
        buf = NULL;
        struct parse ps = {.p = t->stream, .end = t->stream + len};
        bool head = need(&ps, 8) && !memcmp(ps.p, "KH5T", 4);
        ps.p += head ? 4 : 0;
        if (head && get_u32(&ps) == 1) t->root = parse_node(&ps, 0);
        else ps.bad = true;
        if (!ps.bad && ps.is_fatal) {
            kh5_raise(ps.fatal.status, label, ps.fatal.kind, "", "", ps.fatal.tail);
        } else if (ps.bad || !t->root || get_u32(&ps) != 0x21444e45 || ps.bad || ps.p != ps.end) {
            nncc_fail(NNCC_ERR_FORMAT,
                      "'%s': libhdf5 could not read the file (its process sent %zu bytes that "
                      "are not a whole answer): " DAMAGED,
                      label, len);
        } else {
            return t;
        }
        kh5_tree_free(t);
        t = NULL;
    }
    free(buf);
    return NULL;
}

/* ---- Answers, as keras_h5.c's in-process readers give them ---- */

static enum nncc_status traise(const char *label, const struct terr *e, const char *p,
                              const char *n)
{
    return kh5_raise(e->status, label, e->kind, p, n, e->tail);
}

static bool check_path(const char *label, const char *path)
{
    if (!path) return nncc_fail(NNCC_ERR_ARG, "'%s': no object path given", label), false;
    if (strlen(path) > KH5_MAX_PATH)
        return nncc_fail(NNCC_ERR_FORMAT, "'%s': object path of %zu bytes (at most %d): '%.64s...'",
                         label, strlen(path), KH5_MAX_PATH, path),
               false;
    return true;
}

static struct tlink *find_link(const struct tnode *g, const char *name)
{
    size_t lo = 0, hi = g->nlinks;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(g->sorted[mid]->name, name);
        if (c == 0) return g->sorted[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

/* The object at path, through hard links only (as keras_h5.c's open_obj);
 * NULL when missing, with the error set when `report`. */
static const struct tnode *lookup(const struct kh5_tree *t, const char *label, const char *path,
                                  bool report)
{
    if (!check_path(label, path)) return NULL;
    const struct tnode *cur = t->root;
    const char *p = path;
    char comp[KH5_MAX_PATH + 1];
    while (*p) {
        while (*p == '/') p++;
        if (!*p) break;
        size_t len = strcspn(p, "/");
        memcpy(comp, p, len);
        comp[len] = 0;
        p += len;
        const struct tlink *l = cur->type == KH5T_GROUP && !cur->list_bad ? find_link(cur, comp)
                                                                           : NULL;
        if (!l || l->ltype == KH5T_UNKNOWN) {
            if (report)
                nncc_fail(NNCC_ERR_FORMAT, "'%s': no object '%s' (no '%s')", label, path, comp);
            return NULL;
        }
        if (l->ltype != KH5T_HARD) {
            if (report)
                nncc_fail(NNCC_ERR_FORMAT,
                          "'%s': object '%s': '%s' is a %s link, which Keras files do not use "
                          "(refused)",
                          label, path, comp,
                          l->ltype == KH5T_SOFT       ? "soft"
                          : l->ltype == KH5T_EXTERNAL ? "external"
                                                      : "user-defined");
            return NULL;
        }
        cur = l->node;
        if (cur->type == KH5T_BROKEN) {
            if (report) traise(label, &cur->err, path, NULL);
            return NULL;
        }
        if (cur->type == KH5T_DEEP) {
            if (report)
                nncc_fail(NNCC_ERR_UNSUPPORTED,
                          "'%s': object '%s' is nested more than %d groups deep (not read)",
                          label, path, KH5_MAX_DEPTH);
            return NULL;
        }
    }
    return cur;
}

bool kh5t_is_group(const struct kh5_tree *t, const char *label, const char *path)
{
    const struct tnode *n = lookup(t, label, path, false);
    return n && n->type == KH5T_GROUP;
}

bool kh5t_is_dataset(const struct kh5_tree *t, const char *label, const char *path)
{
    const struct tnode *n = lookup(t, label, path, false);
    return n && n->type == KH5T_DATASET;
}

static const struct tattr *find_attr(const struct tnode *n, const char *name)
{
    for (uint32_t i = 0; i < n->nattrs; i++)
        if (!strcmp(n->attrs[i].name, name)) return &n->attrs[i];
    return NULL;
}

bool kh5t_has_attr(const struct kh5_tree *t, const char *label, const char *obj,
                   const char *name)
{
    const struct tnode *n = name ? lookup(t, label, obj, false) : NULL;
    return n && !n->attrs_bad && find_attr(n, name);
}

/* As keras_h5.c's attr_open: the attribute, described, or NULL with the
 * error set. */
static const struct tattr *attr_open(const struct kh5_tree *t, const char *label,
                                     const char *obj, const char *name)
{
    if (!name) return nncc_fail(NNCC_ERR_ARG, "'%s': no attribute name given", label), NULL;
    const struct tnode *n = lookup(t, label, obj, true);
    if (!n) return NULL;
    if (n->attrs_bad) return traise(label, &n->attrs_err, obj, name), NULL;
    const struct tattr *a = find_attr(n, name);
    if (!a)
        return nncc_fail(NNCC_ERR_FORMAT, "'%s': object '%s' has no attribute '%s'", label, obj,
                         name),
               NULL;
    if (a->bad) return traise(label, &a->err, obj, name), NULL;
    return a;
}

char *kh5t_attr_string(const struct kh5_tree *t, const char *label, const char *obj,
                       const char *name)
{
    const struct tattr *a = attr_open(t, label, obj, name);
    if (!a) return NULL;
    if (a->cls != CLS_STRING || a->count != 1)
        return NNCC_FAIL_NULL(NNCC_ERR_FORMAT,
                              "'%s': attribute '%s' of '%s' is not a string (%s of %lld "
                              "elements)",
                              label, name, obj,
                              a->cls == CLS_STRING ? "strings" : "a non-string type",
                              (long long)a->count);
    if (a->sstate == 2) return traise(label, &a->serr, obj, name), NULL;
    char *s = strdup(a->s[0]);
    if (!s) return NNCC_FAIL_NULL(NNCC_ERR_NOMEM, "'%s': out of memory", label);
    return s;
}

/* A malloc'd copy of n strings (and a NULL after them), or NULL. */
static char **copy_strings(const char *const *v, uint32_t n)
{
    char **s = calloc((size_t)n + 1, sizeof *s);
    for (uint32_t i = 0; s && i < n; i++)
        if (!(s[i] = strdup(v[i]))) {
            kh5_strings_free(s, (int)i);
            return NULL;
        }
    return s;
}

int kh5t_attr_strings(const struct kh5_tree *t, const char *label, const char *obj,
                      const char *name, char ***out)
{
    const struct tattr *a = attr_open(t, label, obj, name);
    if (!a) return -1;
    if ((a->cls == CLS_FLOAT || a->cls == CLS_INTEGER) && a->count == 0 && a->rank == 1) {
        /* h5py writes an empty list as an empty float64 array. */
        if (!(*out = calloc(1, sizeof **out)))
            return nncc_fail(NNCC_ERR_NOMEM, "'%s': out of memory", label), -1;
        return 0;
    }
    if (a->cls != CLS_STRING || a->rank != 1) {
        nncc_fail(NNCC_ERR_FORMAT, "'%s': attribute '%s' of '%s' is not a list of strings (%s)",
                  label, name, obj,
                  a->cls != CLS_STRING ? "not a string type"
                  : a->rank < 0        ? "a single string"
                                       : "a multi-dimensional array");
        return -1;
    }
    if (a->sstate == 2) return traise(label, &a->serr, obj, name), -1;
    if (!(*out = copy_strings(a->s, a->ns)))
        return nncc_fail(NNCC_ERR_NOMEM, "'%s': out of memory", label), -1;
    return (int)a->ns;
}

int kh5t_children(const struct kh5_tree *t, const char *label, const char *group, char ***out)
{
    const struct tnode *n = lookup(t, label, group, true);
    if (!n) return -1;
    if (n->type != KH5T_GROUP)
        return nncc_fail(NNCC_ERR_FORMAT, "'%s': '%s' is not a group", label, group), -1;
    if (n->list_bad) return traise(label, &n->list_err, group, NULL), -1;
    char **s = calloc((size_t)n->nlinks + 1, sizeof *s);
    for (uint32_t i = 0; s && i < n->nlinks; i++)
        if (!(s[i] = strdup(n->links[i].name))) {
            kh5_strings_free(s, (int)i);
            s = NULL;
        }
    if (!s) return nncc_fail(NNCC_ERR_NOMEM, "'%s': out of memory", label), -1;
    *out = s;
    return (int)n->nlinks;
}

/* As keras_h5.c's open_dataset: the dataset, or NULL with the error set. */
static const struct tnode *open_dataset(const struct kh5_tree *t, const char *label,
                                        const char *path)
{
    const struct tnode *n = lookup(t, label, path, true);
    if (!n) return NULL;
    if (n->type != KH5T_DATASET)
        return nncc_fail(NNCC_ERR_FORMAT, "'%s': '%s' is not a dataset", label, path), NULL;
    if (n->shape_bad) return traise(label, &n->shape_err, path, NULL), NULL;
    return n;
}

enum nncc_status kh5t_shape(const struct kh5_tree *t, const char *label, const char *path,
                            struct nncc_shape *shape)
{
    const struct tnode *n = open_dataset(t, label, path);
    if (!n) return nncc_last_status();
    *shape = n->shape;
    for (int i = shape->rank; i < NNCC_MAX_RANK; i++) shape->dim[i] = 0;
    return NNCC_OK;
}

enum nncc_status kh5t_read_f32(const struct kh5_tree *t, const char *label, const char *path,
                               float *dst, int64_t n)
{
    const struct tnode *d = open_dataset(t, label, path);
    if (!d) return nncc_last_status();
    if (d->class_bad) return traise(label, &d->class_err, path, NULL);
    if (n != d->count)
        return nncc_fail(NNCC_ERR_SHAPE, "'%s': dataset '%s' holds %lld values, %lld were expected",
                         label, path, (long long)d->count, (long long)n);
    if (n == 0) return NNCC_OK;
    if (d->vstate == 2) return traise(label, &d->verr, path, NULL);
    memcpy(dst, d->values, (size_t)n * sizeof *dst);
    return NNCC_OK;
}

enum nncc_status kh5t_read_scalar(const struct kh5_tree *t, const char *label, const char *path,
                                  double *dv, int64_t *iv, bool *is_int)
{
    const struct tnode *d = open_dataset(t, label, path);
    if (!d) return nncc_last_status();
    if (d->class_bad) {
        *is_int = false;
        return traise(label, &d->class_err, path, NULL);
    }
    *is_int = d->sstate == 1 ? d->is_int : false;
    if (d->count != 1)
        return nncc_fail(NNCC_ERR_FORMAT, "'%s': dataset '%s' holds %lld values, not one", label,
                         path, (long long)d->count);
    if (d->sstate == 2) return traise(label, &d->scerr, path, NULL);
    *iv = d->iv;
    *dv = d->dv;
    return NNCC_OK;
}
