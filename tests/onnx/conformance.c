/*
 * conformance.c — runs ONNX's own backend tests (Debian's libonnx-testdata:
 * data/node, pytorch-converted, pytorch-operator, simple) through nncc.
 *
 * For every test folder: nncc_load_onnx(model.onnx), then for each
 * test_data_set_*: its input_*.pb through nncc_predict_rows_n (the JIT, as
 * users run it), every output compared with output_*.pb at ONNX's
 * tolerances, |got − want| <= atol + rtol·|want| (rtol 1e-3, atol 1e-7).
 * A model nncc refuses as unsupported (NNCC_ERR_UNSUPPORTED) is "n/a" with
 * the reason; any other error or mismatch is "fail".  Each test runs in a
 * child process (two at a time, 120 s each), so one crash is one failure.
 *
 * Usage: conformance DATA_DIR [--table OUT.md] [--baseline CONFORMANCE.md]
 * Writes the table (counts per folder, then one row per test) to OUT.md and
 * fails (exit 1) when a test the baseline lists as passing does not pass.
 * Exit 77 (skipped) when DATA_DIR does not exist, 1 if NNCC_REQUIRE_INTEROP=1.
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "nncc.h"

#define RTOL 1e-3
#define ATOL 1e-7
#define JOBS 2
#define TIMEOUT_S 120

static const char *const folders[] = {"node", "pytorch-converted", "pytorch-operator", "simple"};
enum { N_FOLDERS = 4 };

struct result {
    char folder[32];
    char name[128];
    char verdict[8]; /* pass, fail, n/a */
    char reason[400];
};

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted entries of dir starting with prefix (malloc'd strings). */
static int list_dir(const char *dir, const char *prefix, char ***out)
{
    DIR *d = opendir(dir);
    *out = NULL;
    if (!d)
        return -1;
    int n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, prefix, strlen(prefix)) != 0)
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            *out = realloc(*out, (size_t)cap * sizeof **out);
        }
        (*out)[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(*out, (size_t)n, sizeof **out, cmp_str);
    return n;
}

static void free_list(char **l, int n)
{
    for (int i = 0; i < n; i++)
        free(l[i]);
    free(l);
}

/* One line of reason: no newlines or table bars. */
static void clean(char *s)
{
    for (; *s; s++)
        if (*s == '\n' || *s == '|' || *s == '\r')
            *s = ' ';
}

#define SAY(v, ...) (snprintf(r->verdict, sizeof r->verdict, "%s", v), \
                     snprintf(r->reason, sizeof r->reason, __VA_ARGS__), clean(r->reason))

/* Runs one test folder (in the child). */
/* Loads the model; with `bind`, every input of data set `set` but the
 * first is bound as a constant (ONNX's node tests pass weights, shapes and
 * axes as inputs; nncc compiles them in).  NULL with the error set. */
static nncc_model *load(const char *dir, const char *set, bool bind, bool *tried)
{
    *tried = true;
    char path[4096 + 512];
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    if (!bind)
        return nncc_load_onnx(path);
    struct nncc_array *vals[64] = {0};
    char names[64][256];
    const char *np[64];
    int n = 0;
    for (int i = 1; i < 64; i++) {
        char p[4096 + 512];
        snprintf(p, sizeof p, "%s/%s/input_%d.pb", dir, set, i);
        if (access(p, R_OK) != 0)
            break;
        if (!(vals[n] = nncc_load_onnx_tensor_named(p, names[n], sizeof names[n]))) {
            /* Not a tensor nncc reads (a sequence, an empty tensor): the
             * model's own input then, which it may treat as a constant. */
            continue;
        }
        np[n] = names[n];
        n++;
    }
    *tried = n > 0;
    nncc_model *m = n ? nncc_load_onnx(path, .constant_names = np,
                                       .constant_values = (const struct nncc_array *const *)vals,
                                       .n_constants = n)
                      : NULL;
    for (int i = 0; i < n; i++)
        nncc_array_free(vals[i]);
    return m;
}

static void run_test(const char *dir, struct result *r)
{
    char path[4096 + 512];
    char **sets;
    int n_sets = list_dir(dir, "test_data_set_", &sets);
    if (n_sets <= 0) {
        SAY("fail", "no test_data_set_*");
        return;
    }
    bool bind = false, tried;
    nncc_model *m = load(dir, sets[0], false, &tried);
    char first[1024];
    snprintf(first, sizeof first, "%s", nncc_last_error());
    enum nncc_status st = nncc_last_status();
    char second[1024] = "";
    if (!m && st == NNCC_ERR_UNSUPPORTED) {
        if ((m = load(dir, sets[0], true, &tried))) {
            bind = true;
        } else if (!tried) {
            /* nothing to bind: the first reason stands */
        } else if (nncc_last_status() != NNCC_ERR_UNSUPPORTED) {
            /* Bound, the model is no longer unsupported but wrong. */
            st = nncc_last_status();
            snprintf(first, sizeof first, "%s", nncc_last_error());
        } else {
            const char *rel = strstr(nncc_last_error(), "': ");
            snprintf(second, sizeof second, "; with inputs bound: %s",
                     rel ? rel + 3 : nncc_last_error());
        }
    }
    if (!m) { /* the first attempt's reason */
        const char *rel = strstr(first, "': "); /* drop the file's path */
        SAY(st == NNCC_ERR_UNSUPPORTED ? "n/a" : "fail", "%.200s%.190s", rel ? rel + 3 : first,
            strcmp(second, "; with inputs bound: ") && strstr(second, rel ? rel + 3 : first) ? ""
                                                                                              : second);
        free_list(sets, n_sets);
        return;
    }
    int n_in = nncc_model_num_inputs(m), n_out = nncc_model_num_outputs(m);
    double worst = 0;
    SAY("pass", "%d data set%s", n_sets, n_sets == 1 ? "" : "s");
    for (int s = 0; s < n_sets && strcmp(r->verdict, "pass") == 0; s++) {
        if (bind && s > 0) { /* this set's constants */
            nncc_model_free(m);
            if (!(m = load(dir, sets[s], true, &tried))) {
                SAY("fail", "set %d: %s", s, nncc_last_error());
                break;
            }
        }
        struct nncc_array *in[64] = {0}, *want[64] = {0}, *got[64] = {0};
        const float *xs[64];
        int64_t rows = -1;
        bool ok = n_in <= 64 && n_out <= 64;
        for (int i = 0; ok && i < n_in; i++) {
            snprintf(path, sizeof path, "%s/%s/input_%d.pb", dir, sets[s], i);
            if (!(in[i] = nncc_load_onnx_tensor(path))) {
                SAY("fail", "input %d: %s", i, nncc_last_error());
                ok = false;
                break;
            }
            /* As many rows as its first axis when nncc's input has its rank;
             * one row when imported whole (one more axis). */
            struct nncc_shape ms = nncc_tensor_shape(nncc_model_input(m, i));
            int64_t k = ms.rank == in[i]->shape.rank ? in[i]->shape.dim[0] : 1;
            if (rows >= 0 && k != rows) {
                SAY("fail", "inputs with %lld and %lld rows", (long long)rows, (long long)k);
                ok = false;
            }
            rows = k;
            xs[i] = in[i]->data;
        }
        if (ok && nncc_predict_rows_n(m, xs, rows, got) != NNCC_OK) {
            SAY(nncc_last_status() == NNCC_ERR_UNSUPPORTED ? "n/a" : "fail", "run: %s",
                nncc_last_error());
            ok = false;
        }
        for (int o = 0; ok && o < n_out; o++) {
            snprintf(path, sizeof path, "%s/%s/output_%d.pb", dir, sets[s], o);
            if (!(want[o] = nncc_load_onnx_tensor(path))) {
                SAY("fail", "output %d: %s", o, nncc_last_error());
                break;
            }
            int64_t nw = nncc_array_size(want[o]), ng = nncc_array_size(got[o]);
            if (nw != ng) {
                SAY("fail", "output %d has %lld values; ONNX expects %lld", o, (long long)ng,
                    (long long)nw);
                break;
            }
            for (int64_t j = 0; j < nw; j++) {
                double g = got[o]->data[j], w = want[o]->data[j];
                double err = fabs(g - w);
                bool same = err <= ATOL + RTOL * fabs(w) || (isnan(g) && isnan(w)) ||
                            (isinf(g) && isinf(w) && (g > 0) == (w > 0));
                if (!same) {
                    SAY("fail", "output %d[%lld] = %.9g; ONNX expects %.9g (set %d)", o,
                        (long long)j, g, w, s);
                    break;
                }
                if (err > worst && isfinite(err))
                    worst = err;
            }
            if (strcmp(r->verdict, "pass") != 0)
                break;
        }
        for (int i = 0; i < 64; i++) {
            nncc_array_free(in[i]);
            nncc_array_free(want[i]);
            nncc_array_free(got[i]);
        }
    }
    if (strcmp(r->verdict, "pass") == 0)
        SAY("pass", "%d data set%s, max |err| %.2g%s", n_sets, n_sets == 1 ? "" : "s", worst,
            bind ? "; inputs after the first bound as constants" : "");
    free_list(sets, n_sets);
    nncc_model_free(m);
}

struct job {
    pid_t pid;
    int fd;
    int index;
};

/* The verdicts the baseline table lists as passing. */
static char **baseline_passes(const char *path, int *n)
{
    *n = 0;
    FILE *f = path ? fopen(path, "r") : NULL;
    if (!f)
        return NULL;
    char line[1024], **out = NULL;
    int cap = 0;
    while (fgets(line, sizeof line, f)) {
        char folder[64], name[160], verdict[16];
        if (sscanf(line, "| %63s | %159s | %15s |", folder, name, verdict) == 3 &&
            strcmp(verdict, "pass") == 0) {
            if (*n == cap) {
                cap = cap ? 2 * cap : 256;
                out = realloc(out, (size_t)cap * sizeof *out);
            }
            size_t len = strlen(folder) + strlen(name) + 2;
            out[*n] = malloc(len);
            snprintf(out[(*n)++], len, "%s/%s", folder, name);
        }
    }
    fclose(f);
    return out;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: conformance DATA_DIR [--table OUT.md] [--baseline FILE]\n");
        return 2;
    }
    const char *data = argv[1], *table = NULL, *baseline = NULL;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--table") == 0)
            table = argv[i + 1];
        else if (strcmp(argv[i], "--baseline") == 0)
            baseline = argv[i + 1];
    }
    struct stat st;
    if (stat(data, &st) != 0) {
        /* CI (NNCC_REQUIRE_INTEROP=1) must run it: there a missing suite fails. */
        const char *req = getenv("NNCC_REQUIRE_INTEROP");
        bool required = req && strcmp(req, "1") == 0;
        printf("conformance: %s not found (install libonnx-testdata): %s\n", data,
               required ? "failed (NNCC_REQUIRE_INTEROP=1)" : "skipped");
        return required ? 1 : 77;
    }
    /* Every test folder. */
    struct result *res = NULL;
    int n = 0;
    for (int f = 0; f < N_FOLDERS; f++) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s/%s", data, folders[f]);
        char **names;
        int k = list_dir(dir, "test_", &names);
        for (int i = 0; i < k; i++) {
            res = realloc(res, (size_t)(n + 1) * sizeof *res);
            memset(&res[n], 0, sizeof res[n]);
            snprintf(res[n].folder, sizeof res[n].folder, "%s", folders[f]);
            snprintf(res[n].name, sizeof res[n].name, "%s", names[i]);
            n++;
        }
        free_list(names, k);
    }
    /* Run them, JOBS at a time, each in a child writing its result to a pipe. */
    struct job jobs[JOBS];
    int running = 0, next = 0;
    while (next < n || running > 0) {
        while (running < JOBS && next < n) {
            int p[2];
            if (pipe(p) != 0)
                return perror("pipe"), 2;
            fflush(NULL);
            pid_t pid = fork();
            if (pid == 0) {
                close(p[0]);
                alarm(TIMEOUT_S);
                struct result r = res[next];
                char dir[4096];
                snprintf(dir, sizeof dir, "%s/%s/%s", data, r.folder, r.name);
                run_test(dir, &r);
                ssize_t w = write(p[1], &r, sizeof r);
                _exit(w == (ssize_t)sizeof r ? 0 : 1);
            }
            close(p[1]);
            jobs[running++] = (struct job){pid, p[0], next++};
        }
        int status;
        pid_t pid = wait(&status);
        for (int j = 0; j < running; j++) {
            if (jobs[j].pid != pid)
                continue;
            struct result *r = &res[jobs[j].index];
            struct result got;
            ssize_t k = read(jobs[j].fd, &got, sizeof got);
            close(jobs[j].fd);
            if (k == (ssize_t)sizeof got) {
                *r = got;
            } else {
                snprintf(r->verdict, sizeof r->verdict, "fail");
                if (WIFSIGNALED(status))
                    snprintf(r->reason, sizeof r->reason, "crashed: signal %d (%s)",
                             WTERMSIG(status),
                             WTERMSIG(status) == SIGALRM ? "timeout" : strsignal(WTERMSIG(status)));
                else
                    snprintf(r->reason, sizeof r->reason, "the child exited with %d",
                             WEXITSTATUS(status));
            }
            jobs[j] = jobs[--running];
            break;
        }
    }
    /* Counts per folder. */
    int cnt[N_FOLDERS][3] = {{0}};
    for (int i = 0; i < n; i++)
        for (int f = 0; f < N_FOLDERS; f++)
            if (strcmp(res[i].folder, folders[f]) == 0)
                cnt[f][strcmp(res[i].verdict, "pass") == 0   ? 0
                       : strcmp(res[i].verdict, "fail") == 0 ? 1
                                                            : 2]++;
    FILE *out = table ? fopen(table, "w") : NULL;
    if (table && !out)
        return fprintf(stderr, "conformance: cannot write %s: %s\n", table, strerror(errno)), 2;
    FILE *fs[2] = {stdout, out};
    for (int k = 0; k < 2; k++) {
        FILE *o = fs[k];
        if (!o)
            continue;
        fprintf(o, "# ONNX backend tests through nncc\n\n"
                   "Written by `tests/onnx/conformance` (CTest `onnx_conformance`) from Debian's "
                   "libonnx-testdata (ONNX 1.12).\nEach test's model is imported with "
                   "`nncc_load_onnx`, run with `nncc_predict_rows_n` (generated code) on every "
                   "data set, and compared at rtol 1e-3, atol 1e-7.\nA node test that passes "
                   "weights, shapes or axes as graph inputs, which nncc needs constant, is run "
                   "again with every input after the first bound as a constant from its data "
                   "set (`.constant_names`), and its detail says so.\n`n/a`: nncc refuses the "
                   "model as unsupported (the reason says what); `fail`: any other error or a "
                   "wrong value.\n\n| folder | pass | fail | n/a | total |\n|---|---|---|---|---|\n");
        int tp = 0, tf = 0, tn = 0;
        for (int f = 0; f < N_FOLDERS; f++) {
            fprintf(o, "| %s | %d | %d | %d | %d |\n", folders[f], cnt[f][0], cnt[f][1], cnt[f][2],
                    cnt[f][0] + cnt[f][1] + cnt[f][2]);
            tp += cnt[f][0], tf += cnt[f][1], tn += cnt[f][2];
        }
        fprintf(o, "| all | %d | %d | %d | %d |\n", tp, tf, tn, tp + tf + tn);
        if (o == stdout)
            continue;
        fprintf(o, "\n| folder | test | result | detail |\n|---|---|---|---|\n");
        for (int i = 0; i < n; i++)
            fprintf(o, "| %s | %s | %s | %s |\n", res[i].folder, res[i].name, res[i].verdict,
                    res[i].reason);
    }
    if (out)
        fclose(out);
    /* Regressions against the baseline. */
    int nb, bad = 0;
    char **was = baseline_passes(baseline, &nb);
    for (int b = 0; b < nb; b++) {
        bool now = false;
        for (int i = 0; i < n; i++) {
            char key[200];
            snprintf(key, sizeof key, "%s/%s", res[i].folder, res[i].name);
            if (strcmp(key, was[b]) == 0) {
                now = strcmp(res[i].verdict, "pass") == 0;
                if (!now)
                    printf("REGRESSION %s: %s: %s\n", key, res[i].verdict, res[i].reason);
                break;
            }
        }
        bad += !now;
        free(was[b]);
    }
    free(was);
    free(res);
    if (baseline && nb == 0)
        printf("conformance: the baseline %s lists no passing test\n", baseline);
    printf("conformance: %d test(s) that passed before do not pass now\n", bad);
    return bad ? 1 : 0;
}
