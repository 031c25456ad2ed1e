/*
 * test_golden: training against golden values of real Keras 2.15.
 *
 * tests/golden/training.py builds small models with tf_keras, gives them
 * fixed weights, and writes tests/golden/fixtures/<case>.txt (format in
 * tests/golden/README.md).  For every case this test rebuilds the same model
 * through the C API, layer for layer in the same creation order (so the
 * automatic names agree: "dense_1/kernel"), sets the fixture's weights, and
 * checks against Keras:
 *
 *   1. predict (batch 8);
 *   2. evaluate (batch 8) at the initial weights: loss and every metric;
 *   3. the gradient of the loss on the whole data set as one batch for every
 *      trainable weight.  The public API has no gradient call, so it is read
 *      off one plain SGD step: compile with SGD(learning_rate = 2^16), fit
 *      one epoch of one full batch, and g = (w0 − w1) / 2^16.  The large
 *      power-of-two rate makes the recovery exact to float precision *of g*:
 *      the multiplication is exact and the one rounding of w1 = w0 − 2^16·g
 *      costs at most ulp(w1)/2^17 in g, ~6e-8 relative when |2^16·g| ≫ |w0|
 *      (with lr = 1 an ulp of w0 would swamp small gradients).  The fit's
 *      loss must equal the batch loss Keras' GradientTape saw;
 *   4. the weights after three steps of the case's optimizer on that batch
 *      (fit: 3 epochs of one batch, no shuffling ≡ train_on_batch ×3), and
 *      the loss and metrics of each step;
 *   5. a 2-epoch fit from the initial weights with a fresh optimizer
 *      (batch 8 with a partial last batch, validation_split 0.25, no
 *      shuffling): every History key and value, the final weights, and
 *      evaluate() afterwards.
 *
 * Tolerance: 1e-5 relative plus 1e-6 absolute everywhere (TOL_REL,
 * TOL_ABS), the float32 noise of two frameworks summing in different
 * orders.  Nothing is loosened per case, Adam and RMSprop included: every
 * case prints the largest difference as a fraction of this tolerance, and
 * where nncc follows Keras' arithmetic that is below 0.1 (a float64 Keras
 * run is within ~2e-7 of the float32 one), so the 1e-5 leaves a wide
 * margin for noise while a systematic deviation of a few 1e-6 shows.
 *
 * Metric names: Keras names a metric after the string the user gave
 * ("mse" → key "mse"); nncc has one flag per metric whose key is always
 * "mean_squared_error" / "mean_absolute_error".  The `mse` case records
 * Keras' short keys, mapped here (metric_key()).
 *
 * One cmocka test per case; a case reports all its mismatches before it
 * fails.  Time: ~40 JIT compiles with a cold cache (about a minute on a
 * busy 2-core machine), a few seconds when the cache is warm; see
 * fresh_model() for how compiles are shared.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include "nncc.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOL_REL 1e-5
#define TOL_ABS 1e-6
#define GRAD_LR 65536.0f /* 2^16: see the essay above */

/* ---- Fixture parser ---------------------------------------------------- */

enum fx_kind { FX_SCALAR, FX_TENSOR, FX_HISTORY };

struct fx_entry {
    enum fx_kind kind;
    char name[160];
    int rank;
    int64_t dim[NNCC_MAX_RANK];
    int64_t count; /* values: 1 for a scalar, epochs for a history */
    double *v;
    bool used;
};

struct fixture {
    char path[512];
    int n;
    struct fx_entry *e;
};

static void fx_free(struct fixture *fx)
{
    for (int i = 0; i < fx->n; i++)
        free(fx->e[i].v);
    free(fx->e);
    free(fx);
}

/* Reads one line of any length (the data lines are long); NULL at EOF. */
static char *read_line(FILE *f)
{
    size_t cap = 4096, len = 0;
    char *s = malloc(cap);
    if (!s)
        return NULL;
    int c;
    while ((c = fgetc(f)) != EOF && c != '\n') {
        if (len + 1 >= cap) {
            char *t = realloc(s, cap *= 2);
            if (!t) {
                free(s);
                return NULL;
            }
            s = t;
        }
        s[len++] = (char)c;
    }
    if (c == EOF && len == 0) {
        free(s);
        return NULL;
    }
    s[len] = 0;
    return s;
}

/* Parses "<kind> <name> …"; returns false (with a message) on bad syntax. */
static bool fx_parse_line(char *line, struct fx_entry *e, const char *path, int lineno)
{
    char kind[16];
    int off = 0;
    memset(e, 0, sizeof *e);
    if (sscanf(line, "%15s %159s %n", kind, e->name, &off) != 2) {
        print_error("%s:%d: expected '<kind> <name> …'\n", path, lineno);
        return false;
    }
    char *p = line + off, *end;
    if (!strcmp(kind, "scalar")) {
        e->kind = FX_SCALAR;
        e->count = 1;
    } else if (!strcmp(kind, "tensor")) {
        e->kind = FX_TENSOR;
        e->rank = (int)strtol(p, &end, 10);
        if (end == p || e->rank < 0 || e->rank > NNCC_MAX_RANK) {
            print_error("%s:%d: bad rank\n", path, lineno);
            return false;
        }
        p = end;
        e->count = 1;
        for (int i = 0; i < e->rank; i++) {
            e->dim[i] = strtoll(p, &end, 10);
            if (end == p || e->dim[i] <= 0) {
                print_error("%s:%d: bad dimension %d\n", path, lineno, i);
                return false;
            }
            p = end;
            e->count *= e->dim[i];
        }
        while (*p == ' ')
            p++;
        if (*p++ != ':') {
            print_error("%s:%d: expected ':' after the shape\n", path, lineno);
            return false;
        }
    } else if (!strcmp(kind, "history")) {
        e->kind = FX_HISTORY;
        e->count = 0;
        for (char *q = p; *q;) { /* count the values */
            strtod(q, &end);
            if (end == q)
                break;
            e->count++;
            q = end;
        }
    } else {
        print_error("%s:%d: unknown line kind '%s'\n", path, lineno, kind);
        return false;
    }
    e->v = malloc(sizeof *e->v * (size_t)(e->count + 1));
    if (!e->v)
        return false;
    for (int64_t i = 0; i < e->count; i++) {
        e->v[i] = strtod(p, &end);
        if (end == p) {
            print_error("%s:%d: %s: %lld values, expected %lld\n", path, lineno, e->name,
                        (long long)i, (long long)e->count);
            return false;
        }
        p = end;
    }
    while (*p == ' ')
        p++;
    if (*p) {
        print_error("%s:%d: %s: trailing text '%.20s'\n", path, lineno, e->name, p);
        return false;
    }
    return true;
}

static struct fixture *fx_load(const char *name)
{
    struct fixture *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    snprintf(fx->path, sizeof fx->path, "%s/tests/golden/fixtures/%s.txt", NNCC_SOURCE_DIR, name);
    FILE *f = fopen(fx->path, "r");
    if (!f)
        fail_msg("cannot open %s (regenerate with python3 tests/golden/training.py)", fx->path);
    char *line;
    int lineno = 0, cap = 0;
    bool ok = true;
    while (ok && (line = read_line(f))) {
        lineno++;
        if (line[0] && line[0] != '#') {
            if (fx->n == cap) {
                cap = cap ? 2 * cap : 32;
                struct fx_entry *t = realloc(fx->e, sizeof *t * (size_t)cap);
                assert_non_null(t);
                fx->e = t;
            }
            ok = fx_parse_line(line, &fx->e[fx->n], fx->path, lineno);
            if (ok)
                fx->n++;
            else
                free(fx->e[fx->n].v);
        }
        free(line);
    }
    fclose(f);
    if (!ok) {
        fx_free(fx);
        fail_msg("malformed fixture");
    }
    return fx;
}

static struct fx_entry *fx_find(struct fixture *fx, enum fx_kind kind, const char *name)
{
    for (int i = 0; i < fx->n; i++)
        if (fx->e[i].kind == kind && !strcmp(fx->e[i].name, name))
            return &fx->e[i];
    return NULL;
}

static struct fx_entry *fx_need(struct fixture *fx, enum fx_kind kind, const char *name)
{
    struct fx_entry *e = fx_find(fx, kind, name);
    if (!e)
        fail_msg("%s: no entry '%s'", fx->path, name);
    return e;
}

static double fx_scalar(struct fixture *fx, const char *name)
{
    return fx_need(fx, FX_SCALAR, name)->v[0];
}

/* ---- Comparing --------------------------------------------------------- */

/* A case's running tally: every mismatch is printed, the case fails at the end. */
struct ctx {
    const char *name;
    int bad;
    int64_t compared;
    double worst;        /* the largest |nncc − Keras| / tolerance seen */
    char worst_what[200];
};

static bool close_enough(double got, double want)
{
    return fabs(got - want) <= TOL_ABS + TOL_REL * fabs(want); /* NaN fails */
}

static void cmp_values(struct ctx *c, const char *what, const double *got, const double *want,
                       int64_t n)
{
    int shown = 0, bad = 0;
    for (int64_t i = 0; i < n; i++) {
        double r = fabs(got[i] - want[i]) / (TOL_ABS + TOL_REL * fabs(want[i]));
        if (r > c->worst || isnan(r)) {
            c->worst = isnan(r) ? INFINITY : r;
            snprintf(c->worst_what, sizeof c->worst_what, "%s [%lld]", what, (long long)i);
        }
        if (!close_enough(got[i], want[i])) {
            if (shown++ < 6)
                print_error("%s: %s [%lld]: nncc %.9g, Keras %.9g (diff %.3g)\n", c->name, what,
                            (long long)i, got[i], want[i], fabs(got[i] - want[i]));
            bad++;
        }
    }
    c->compared += n;
    if (bad > 6)
        print_error("%s: %s: %d of %lld values differ\n", c->name, what, bad, (long long)n);
    c->bad += bad;
}

static void cmp_floats(struct ctx *c, const char *what, const float *got, const struct fx_entry *e)
{
    double *g = malloc(sizeof *g * (size_t)e->count);
    assert_non_null(g);
    for (int64_t i = 0; i < e->count; i++)
        g[i] = got[i];
    cmp_values(c, what, g, e->v, e->count);
    free(g);
}

/* nncc's key for a Keras key: Keras names a metric after the user's string
 * ("mse", "val_mae"); nncc always uses the long name. */
static void metric_key(const char *keras, char *out, size_t size)
{
    static const char *const alias[][2] = {{"mse", "mean_squared_error"},
                                           {"mae", "mean_absolute_error"}};
    const char *base = strncmp(keras, "val_", 4) ? keras : keras + 4;
    for (size_t i = 0; i < sizeof alias / sizeof alias[0]; i++)
        if (!strcmp(base, alias[i][0])) {
            snprintf(out, size, "%.*s%s", (int)(base - keras), keras, alias[i][1]);
            return;
        }
    snprintf(out, size, "%s", keras);
}

/* Every fixture scalar "<prefix><key>" against logs[key], and no extra logs. */
static void cmp_logs(struct ctx *c, struct fixture *fx, const char *prefix,
                     const struct nncc_logs *logs)
{
    size_t pl = strlen(prefix);
    int expected = 0;
    for (int i = 0; i < fx->n; i++) {
        struct fx_entry *e = &fx->e[i];
        if (e->kind != FX_SCALAR || strncmp(e->name, prefix, pl))
            continue;
        e->used = true;
        expected++;
        char key[160], what[200];
        metric_key(e->name + pl, key, sizeof key);
        double got = nncc_logs_get(logs, key);
        snprintf(what, sizeof what, "%s%s", prefix, key);
        cmp_values(c, what, &got, e->v, 1);
    }
    if (logs->n != expected) {
        print_error("%s: %s: nncc returned %d values, Keras %d\n", c->name, prefix, logs->n,
                    expected);
        c->bad++;
    }
}

/* Every fixture history "<prefix><key>" against the History, and no extra keys. */
static void cmp_history(struct ctx *c, struct fixture *fx, const char *prefix,
                        const nncc_history *h)
{
    size_t pl = strlen(prefix);
    int expected = 0;
    for (int i = 0; i < fx->n; i++) {
        struct fx_entry *e = &fx->e[i];
        if (e->kind != FX_HISTORY || strncmp(e->name, prefix, pl) ||
            (!pl && strchr(e->name, ':')))
            continue;
        e->used = true;
        expected++;
        char key[160], what[200];
        metric_key(e->name + pl, key, sizeof key);
        snprintf(what, sizeof what, "history %s%s", prefix, key);
        if (nncc_history_num_epochs(h) != e->count) {
            print_error("%s: %s: %d epochs, Keras %lld\n", c->name, what,
                        nncc_history_num_epochs(h), (long long)e->count);
            c->bad++;
            continue;
        }
        double got[16];
        assert_true(e->count <= 16);
        for (int k = 0; k < e->count; k++)
            got[k] = nncc_history_get(h, key, k);
        cmp_values(c, what, got, e->v, e->count);
    }
    if (nncc_history_num_keys(h) != expected) {
        print_error("%s: history (%s): nncc has %d keys, Keras %d\n", c->name, prefix,
                    nncc_history_num_keys(h), expected);
        c->bad++;
    }
}

/* ---- Weights ----------------------------------------------------------- */

/* Calls fn for every weight of the model (in layer order) with the fixture
 * entry "<prefix><weight name>" (NULL when absent). */
#define FOR_WEIGHTS(m, l_, i_)                                          \
    for (int li_ = 0; li_ < nncc_model_num_layers(m); li_++)            \
        for (nncc_layer *l_ = nncc_model_layer((m), li_); l_; l_ = NULL) \
            for (int i_ = 0; i_ < nncc_layer_num_weights(l_); i_++)

static int64_t weight_count(nncc_layer *l, int i)
{
    struct nncc_shape s = nncc_layer_weight_shape(l, i);
    int64_t n = 1;
    for (int k = 0; k < s.rank; k++)
        n *= s.dim[k];
    return n;
}

static struct fx_entry *weight_entry(struct fixture *fx, const char *prefix, nncc_layer *l, int i)
{
    char name[200];
    snprintf(name, sizeof name, "%s%s", prefix, nncc_layer_weight_name(l, i));
    struct fx_entry *e = fx_find(fx, FX_TENSOR, name);
    if (e) {
        struct nncc_shape s = nncc_layer_weight_shape(l, i);
        bool same = s.rank == e->rank;
        for (int k = 0; same && k < s.rank; k++)
            same = s.dim[k] == e->dim[k];
        if (!same)
            fail_msg("%s: %s: nncc's shape differs from Keras'", fx->path, name);
        e->used = true;
    }
    return e;
}

/* Sets every weight from "w0:*"; all of them must be in the fixture. */
static void set_initial_weights(nncc_model *m, struct fixture *fx)
{
    FOR_WEIGHTS(m, l, i)
    {
        struct fx_entry *e = weight_entry(fx, "w0:", l, i);
        if (!e)
            fail_msg("%s: no w0:%s", fx->path, nncc_layer_weight_name(l, i));
        float *v = malloc(sizeof *v * (size_t)e->count);
        assert_non_null(v);
        for (int64_t k = 0; k < e->count; k++)
            v[k] = (float)e->v[k]; /* exact: printed with %.9g */
        if (nncc_set_weights(l, i, v, e->count))
            fail_msg("set_weights %s: %s", e->name, nncc_last_error());
        free(v);
    }
}

static float *get_weight(nncc_layer *l, int i)
{
    int64_t n = weight_count(l, i);
    float *v = malloc(sizeof *v * (size_t)n);
    assert_non_null(v);
    if (nncc_get_weights(l, i, v, n))
        fail_msg("get_weights %s: %s", nncc_layer_weight_name(l, i), nncc_last_error());
    return v;
}

/* Every weight against "<prefix>*" (trainable weights only are recorded). */
static void cmp_weights(struct ctx *c, nncc_model *m, struct fixture *fx, const char *prefix)
{
    FOR_WEIGHTS(m, l, i)
    {
        struct fx_entry *e = weight_entry(fx, prefix, l, i);
        if (!e)
            continue;
        float *v = get_weight(l, i);
        char what[200];
        snprintf(what, sizeof what, "%s%s", prefix, nncc_layer_weight_name(l, i));
        cmp_floats(c, what, v, e);
        free(v);
    }
}

/* ---- The models (mirroring tests/golden/training.py) ------------------ */

static nncc_model *mlp_softmax(void)
{
    nncc_graph *g = nncc_graph_new();
    nncc_tensor *x = nncc_input(g, NNCC_SHAPE(4));
    nncc_tensor *h = nncc_dense(x, .units = 5, .activation = NNCC_TANH);
    return nncc_model_new(x, nncc_dense(h, .units = 3, .activation = NNCC_SOFTMAX));
}

/* Input(4) → Dense(6, hidden) → Dense(units, out). */
static nncc_model *mlp_out(int units, enum nncc_activation out)
{
    nncc_graph *g = nncc_graph_new();
    nncc_tensor *x = nncc_input(g, NNCC_SHAPE(4));
    nncc_tensor *h = nncc_dense(x, .units = 6, .activation = NNCC_RELU);
    return nncc_model_new(x, nncc_dense(h, .units = units, .activation = out));
}
static nncc_model *mlp_linear2(void) { return mlp_out(2, NNCC_LINEAR); }
static nncc_model *mlp_sigmoid1(void) { return mlp_out(1, NNCC_SIGMOID); }
static nncc_model *mlp_hard_sigmoid1(void) { return mlp_out(1, NNCC_HARD_SIGMOID); }
static nncc_model *mlp_sigmoid3(void) { return mlp_out(3, NNCC_SIGMOID); }
static nncc_model *mlp_linear3(void) { return mlp_out(3, NNCC_LINEAR); }
static nncc_model *mlp_softplus3(void) { return mlp_out(3, NNCC_SOFTPLUS); }
static nncc_model *mlp_softmax3(void) { return mlp_out(3, NNCC_SOFTMAX); }

static nncc_model *conv(void)
{
    nncc_graph *g = nncc_graph_new();
    nncc_tensor *x = nncc_input(g, NNCC_SHAPE(6, 6, 2));
    nncc_tensor *h = nncc_conv2d(x, .filters = 4, .kernel_size = {3, 3}, .strides = {2, 2},
                                 .padding = NNCC_SAME, .activation = NNCC_RELU);
    h = nncc_maxpool2d(h, .pool_size = {2, 2}, .strides = {1, 1});
    h = nncc_flatten(h);
    return nncc_model_new(x, nncc_dense(h, .units = 3, .activation = NNCC_SOFTMAX));
}

static nncc_model *pool(void)
{
    nncc_graph *g = nncc_graph_new();
    nncc_tensor *x = nncc_input(g, NNCC_SHAPE(5, 5, 2));
    nncc_tensor *h = nncc_conv2d(x, .filters = 3, .kernel_size = {2, 2}, .activation = NNCC_ELU);
    h = nncc_avgpool2d(h, .pool_size = {3, 3}, .strides = {2, 2}, .padding = NNCC_SAME);
    h = nncc_global_avgpool2d(h);
    return nncc_model_new(x, nncc_dense(h, .units = 2, .activation = NNCC_SOFTMAX));
}

static nncc_model *branch(void)
{
    nncc_graph *g = nncc_graph_new();
    nncc_tensor *x = nncc_input(g, NNCC_SHAPE(5));
    nncc_tensor *a = nncc_dense(x, .units = 4, .activation = NNCC_RELU);
    nncc_tensor *b = nncc_dense(x, .units = 4, .activation = NNCC_TANH);
    nncc_tensor *s = nncc_add(NNCC_TENSORS(a, b));
    nncc_tensor *c = nncc_concatenate(NNCC_TENSORS(s, a, x));
    return nncc_model_new(x, nncc_dense(c, .units = 3, .activation = NNCC_SOFTMAX));
}

static nncc_model *dropout0(void)
{
    nncc_graph *g = nncc_graph_new();
    nncc_tensor *x = nncc_input(g, NNCC_SHAPE(4));
    nncc_tensor *h = nncc_dense(x, .units = 6, .activation = NNCC_RELU);
    h = nncc_dropout(h, .rate = 0.0f);
    return nncc_model_new(x, nncc_dense(h, .units = 3, .activation = NNCC_SOFTMAX));
}

static nncc_model *activations(void)
{
    static const struct {
        const char *name;
        enum nncc_activation act;
    } acts[] = {{"act_relu", NNCC_RELU},         {"act_tanh", NNCC_TANH},
                {"act_elu", NNCC_ELU},           {"act_selu", NNCC_SELU},
                {"act_gelu", NNCC_GELU},         {"act_swish", NNCC_SWISH},
                {"act_softplus", NNCC_SOFTPLUS}, {"act_softsign", NNCC_SOFTSIGN},
                {"act_hard_sigmoid", NNCC_HARD_SIGMOID}, {"act_leaky_relu", NNCC_LEAKY_RELU}};
    enum { N = sizeof acts / sizeof acts[0] };
    nncc_graph *g = nncc_graph_new();
    nncc_tensor *x = nncc_input(g, NNCC_SHAPE(4));
    nncc_tensor *hs[N];
    for (int i = 0; i < N; i++)
        hs[i] = nncc_dense(x, .units = 3, .activation = acts[i].act, .name = acts[i].name);
    nncc_tensor *h = nncc_concatenate(hs, N);
    return nncc_model_new(x,
                          nncc_dense(h, .units = 3, .activation = NNCC_SOFTMAX, .name = "out"));
}

/* LeakyReLU(0.2) and ELU(0.5) as layers of their own. */
static nncc_model *leaky_elu(void)
{
    nncc_graph *g = nncc_graph_new();
    nncc_tensor *x = nncc_input(g, NNCC_SHAPE(4));
    nncc_tensor *h = nncc_dense(x, .units = 6);
    h = nncc_leaky_relu(h, .alpha = 0.2f);
    h = nncc_dense(h, .units = 5);
    h = nncc_elu(h, .alpha = 0.5f);
    return nncc_model_new(x, nncc_dense(h, .units = 3, .activation = NNCC_SOFTMAX));
}

/* BatchNormalization in training: 2-D (Keras 2's non-fused moving variance)
 * and 4-D (the fused path's n/(n−1)). */
static nncc_model *batchnorm_dense(void)
{
    nncc_graph *g = nncc_graph_new();
    nncc_tensor *x = nncc_input(g, NNCC_SHAPE(4));
    nncc_tensor *h = nncc_dense(x, .units = 5);
    h = nncc_batchnorm(h, .momentum = 0.8f);
    h = nncc_activation(h, .activation = NNCC_RELU);
    return nncc_model_new(x, nncc_dense(h, .units = 3, .activation = NNCC_SOFTMAX));
}

static nncc_model *batchnorm_conv(void)
{
    nncc_graph *g = nncc_graph_new();
    nncc_tensor *x = nncc_input(g, NNCC_SHAPE(5, 5, 2));
    nncc_tensor *h = nncc_conv2d(x, .filters = 3, .kernel_size = {3, 3});
    h = nncc_batchnorm(h, .momentum = 0.7f, .epsilon = 0.01f);
    h = nncc_activation(h, .activation = NNCC_RELU);
    h = nncc_flatten(h);
    return nncc_model_new(x, nncc_dense(h, .units = 3, .activation = NNCC_SOFTMAX));
}

static nncc_model *batchnorm(void)
{
    nncc_graph *g = nncc_graph_new();
    nncc_tensor *x = nncc_input(g, NNCC_SHAPE(4));
    nncc_tensor *h = nncc_dense(x, .units = 5);
    h = nncc_batchnorm(h);
    h = nncc_activation(h, .activation = NNCC_RELU);
    return nncc_model_new(x, nncc_dense(h, .units = 2));
}

/* ---- Cases ------------------------------------------------------------- */

struct golden_case {
    const char *name;
    nncc_model *(*build)(void);
    struct nncc_optimizer opt;
    enum nncc_loss loss;
    unsigned metrics;
    bool from_logits;
    bool predict_only;
};

#define CCE NNCC_CATEGORICAL_CROSSENTROPY
#define SCCE NNCC_SPARSE_CATEGORICAL_CROSSENTROPY
#define BCE NNCC_BINARY_CROSSENTROPY
#define ACC NNCC_ACCURACY
/* C(name, build, optimizer, loss, metrics[, more designators]) */
#define C(name_, build_, opt_, loss_, ...) \
    {.name = (name_), .build = (build_), .opt = opt_, .loss = (loss_), .metrics = __VA_ARGS__}
static const struct golden_case cases[] = {
    /* Optimizers on Dense(tanh) → Dense(softmax), categorical CE. */
    C("sgd", mlp_softmax, nncc_sgd(.learning_rate = 0.1f), CCE, ACC),
    C("sgd_momentum", mlp_softmax, nncc_sgd(.learning_rate = 0.1f, .momentum = 0.9f), CCE, ACC),
    C("sgd_nesterov", mlp_softmax,
      nncc_sgd(.learning_rate = 0.1f, .momentum = 0.9f, .nesterov = true), CCE, ACC),
    C("sgd_clipnorm", mlp_softmax,
      nncc_sgd(.learning_rate = 0.1f, .momentum = 0.9f, .clipnorm = 0.4f), CCE, ACC),
    C("sgd_clipvalue", mlp_softmax,
      nncc_sgd(.learning_rate = 0.1f, .momentum = 0.9f, .clipvalue = 0.05f), CCE, ACC),
    C("sgd_global_clipnorm", mlp_softmax,
      nncc_sgd(.learning_rate = 0.1f, .momentum = 0.9f, .global_clipnorm = 0.2f), CCE, ACC),
    C("adam", mlp_softmax, nncc_adam(), CCE, ACC),
    /* Regression test for a fixed bug: nncc's Adam steps were 6.4e-6
     * (relative) larger than Keras' with beta_2 = 0.999: codegen/optimizer.c wrote the moment coefficients as
     * 1 − (double)0.999f = 0.000999987 (and 1 − (double)0.9f = 0.100000024),
     * where Keras computes `1 - self.beta_2` from the Python float, 0.001f;
     * the bias correction α = lr·√(1−β2^t)/(1−β1^t) does use the float32
     * β in both.  After 4 steps at lr 0.05 the weights are ~1.3e-6 off
     * (Keras float32 is within 1.7e-7 of a float64 Keras run), so the
     * wfit: weights near zero failed here.  1 − β now comes from the decimal
     * β (ir_decimal), as Keras computes it. */
    C("adam_lr", mlp_softmax, nncc_adam(.learning_rate = 0.05f), CCE, ACC),
    C("adam_amsgrad", mlp_softmax,
      nncc_adam(.learning_rate = 0.05f, .beta_2 = 0.5f, .amsgrad = true), CCE, ACC),
    C("adagrad", mlp_softmax, nncc_adagrad(.learning_rate = 0.1f), CCE, ACC),
    C("rmsprop", mlp_softmax, nncc_rmsprop(.learning_rate = 0.01f), CCE, ACC),
    C("rmsprop_momentum", mlp_softmax, nncc_rmsprop(.learning_rate = 0.01f, .momentum = 0.9f),
      CCE, ACC),
    C("rmsprop_centered", mlp_softmax, nncc_rmsprop(.learning_rate = 0.01f, .centered = true),
      CCE, ACC),
    /* Losses and accuracy resolution. */
    C("mse", mlp_linear2, nncc_sgd(.learning_rate = 0.05f), NNCC_MEAN_SQUARED_ERROR,
      NNCC_METRIC_MSE | NNCC_METRIC_MAE),
    C("mae", mlp_linear2, nncc_sgd(.learning_rate = 0.05f), NNCC_MEAN_ABSOLUTE_ERROR,
      NNCC_METRIC_MSE | NNCC_METRIC_MAE),
    C("bce_sigmoid", mlp_sigmoid1, nncc_sgd(.learning_rate = 0.1f), BCE, ACC),
    C("bce_clipped", mlp_hard_sigmoid1, nncc_sgd(.learning_rate = 0.1f), BCE, ACC),
    C("bce_multilabel", mlp_sigmoid3, nncc_sgd(.learning_rate = 0.1f), BCE, ACC),
    C("cce_logits", mlp_linear3, nncc_sgd(.learning_rate = 0.1f), CCE, ACC, .from_logits = true),
    C("cce_softplus", mlp_softplus3, nncc_sgd(.learning_rate = 0.1f), CCE, ACC),
    C("scce", mlp_softmax3, nncc_sgd(.learning_rate = 0.1f), SCCE, ACC),
    C("scce_n1", mlp_softmax3, nncc_sgd(.learning_rate = 0.1f), SCCE, ACC),
    /* Layers. */
    C("conv", conv, nncc_sgd(.learning_rate = 0.1f), CCE, ACC),
    C("pool", pool, nncc_sgd(.learning_rate = 0.1f), CCE, ACC),
    C("branch", branch, nncc_sgd(.learning_rate = 0.1f), CCE, ACC),
    C("dropout0", dropout0, nncc_sgd(.learning_rate = 0.1f), CCE, ACC),
    C("activations", activations, nncc_sgd(.learning_rate = 0.1f), CCE, ACC),
    C("leaky_elu", leaky_elu, nncc_sgd(.learning_rate = 0.1f), CCE, ACC),
    C("batchnorm_dense", batchnorm_dense, nncc_sgd(.learning_rate = 0.1f), CCE, ACC),
    C("batchnorm_conv", batchnorm_conv, nncc_sgd(.learning_rate = 0.1f), CCE, ACC),
    {.name = "batchnorm", .build = batchnorm, .predict_only = true},
};
enum { N_CASES = sizeof cases / sizeof cases[0] };

static struct nncc_array *array_of(struct fx_entry *e)
{
    struct nncc_shape s = {.rank = e->rank};
    for (int i = 0; i < e->rank; i++)
        s.dim[i] = e->dim[i];
    struct nncc_array *a = nncc_array_new(s);
    if (!a)
        fail_msg("nncc_array_new %s: %s", e->name, nncc_last_error());
    for (int64_t i = 0; i < e->count; i++)
        a->data[i] = (float)e->v[i];
    e->used = true;
    return a;
}

static void compile_as(nncc_model *m, const struct golden_case *gc, struct nncc_optimizer opt)
{
    if (nncc_compile(m, .optimizer = opt, .loss = gc->loss, .metrics = gc->metrics,
                     .from_logits = gc->from_logits))
        fail_msg("%s: compile: %s", gc->name, nncc_last_error());
}

static nncc_history *fit_or_fail(const char *name, nncc_model *m, struct nncc_array *x,
                                 struct nncc_array *y, struct nncc_fit_opts o)
{
    nncc_history *h = nncc_fit_(m, x, y, o);
    if (!h)
        fail_msg("%s: fit: %s", name, nncc_last_error());
    return h;
}

/* Step 3: gradients from one SGD step of rate GRAD_LR on the whole batch. */
static void check_gradients(struct ctx *c, const struct golden_case *gc, nncc_model *m,
                            struct fixture *fx, struct nncc_array *x, struct nncc_array *y)
{
    int n = (int)x->shape.dim[0];
    compile_as(m, gc, nncc_sgd(.learning_rate = GRAD_LR));
    /* evaluate() at the initial weights (the same compiled object). */
    struct nncc_logs ev =
        nncc_evaluate(m, x, y, .batch_size = (int)fx_scalar(fx, "eval_batch_size"));
    if (ev.n == 0)
        fail_msg("%s: evaluate: %s", gc->name, nncc_last_error());
    cmp_logs(c, fx, "eval:", &ev);

    nncc_history *h = fit_or_fail(gc->name, m, x, y,
                                  (struct nncc_fit_opts){.batch_size = n, .epochs = 1,
                                                         .no_shuffle = true});
    double loss = nncc_history_get(h, "loss", 0);
    cmp_values(c, "batch_loss", &loss, &fx_need(fx, FX_SCALAR, "batch_loss")->v[0], 1);
    fx_need(fx, FX_SCALAR, "batch_loss")->used = true;
    nncc_history_free(h);

    FOR_WEIGHTS(m, l, i)
    {
        struct fx_entry *g = weight_entry(fx, "grad:", l, i);
        struct fx_entry *w0 = weight_entry(fx, "w0:", l, i);
        if (!g)
            continue;
        float *w1 = get_weight(l, i);
        double *got = malloc(sizeof *got * (size_t)g->count);
        assert_non_null(got);
        for (int64_t k = 0; k < g->count; k++)
            got[k] = ((double)(float)w0->v[k] - (double)w1[k]) / (double)GRAD_LR;
        char what[200];
        snprintf(what, sizeof what, "grad:%s", nncc_layer_weight_name(l, i));
        cmp_values(c, what, got, g->v, g->count);
        free(got);
        free(w1);
    }
}

/* A new model with the fixture's initial weights.  Each phase takes a new
 * one rather than compiling one model again: a model's generated code
 * differs after a second compile (new slot tensors), whereas a new model
 * with the same optimizer yields the same code and hits the JIT cache, and
 * a plain SGD case shares the gradient phase's code (the learning rate is
 * a run-time value).  This halves the cold-cache time of the test. */
static nncc_model *fresh_model(const struct golden_case *gc, struct fixture *fx)
{
    nncc_model *m = gc->build();
    if (!m)
        fail_msg("%s: building the model: %s", gc->name, nncc_last_error());
    set_initial_weights(m, fx);
    return m;
}

static void test_case(void **state)
{
    const struct golden_case *gc = *state;
    struct ctx c = {.name = gc->name};
    struct fixture *fx = fx_load(gc->name);
    nncc_model *m = fresh_model(gc, fx);
    struct nncc_array *x = array_of(fx_need(fx, FX_TENSOR, "x"));
    int n = (int)fx_scalar(fx, "n");
    fx_need(fx, FX_SCALAR, "n")->used = true;
    assert_int_equal(x->shape.dim[0], n);

    /* 1. predict, with training.py's batch size */
    struct nncc_array *pred = nncc_predict(m, x, .batch_size = 8);
    if (!pred)
        fail_msg("%s: predict: %s", gc->name, nncc_last_error());
    struct fx_entry *pe = fx_need(fx, FX_TENSOR, "pred");
    pe->used = true;
    assert_int_equal(nncc_array_size(pred), pe->count);
    cmp_floats(&c, "predict", pred->data, pe);
    nncc_array_free(pred);

    if (!gc->predict_only) {
        struct nncc_array *y = array_of(fx_need(fx, FX_TENSOR, "y"));
        static const char *const config[] = {"eval_batch_size", "steps", "fit_batch_size",
                                             "fit_epochs", "validation_split"};
        for (size_t k = 0; k < sizeof config / sizeof config[0]; k++)
            fx_need(fx, FX_SCALAR, config[k])->used = true;

        /* 2 and 3: evaluate and gradients at the initial weights. */
        check_gradients(&c, gc, m, fx, x, y);

        /* 4. three steps of the case's optimizer on the whole batch. */
        nncc_model_free(m);
        m = fresh_model(gc, fx);
        compile_as(m, gc, gc->opt);
        nncc_history *h = fit_or_fail(gc->name, m, x, y,
                                      (struct nncc_fit_opts){.batch_size = n,
                                                             .epochs = (int)fx_scalar(fx, "steps"),
                                                             .no_shuffle = true});
        cmp_history(&c, fx, "step:", h);
        nncc_history_free(h);
        cmp_weights(&c, m, fx, "w3:");

        /* 5. a 2-epoch fit with validation from the initial weights. */
        nncc_model_free(m);
        m = fresh_model(gc, fx);
        compile_as(m, gc, gc->opt);
        h = fit_or_fail(gc->name, m, x, y,
                        (struct nncc_fit_opts){
                            .batch_size = (int)fx_scalar(fx, "fit_batch_size"),
                            .epochs = (int)fx_scalar(fx, "fit_epochs"),
                            .validation_split = (float)fx_scalar(fx, "validation_split"),
                            .no_shuffle = true});
        cmp_history(&c, fx, "", h);
        nncc_history_free(h);
        cmp_weights(&c, m, fx, "wfit:");
        struct nncc_logs ev =
            nncc_evaluate(m, x, y, .batch_size = (int)fx_scalar(fx, "eval_batch_size"));
        if (ev.n == 0)
            fail_msg("%s: evaluate: %s", gc->name, nncc_last_error());
        cmp_logs(&c, fx, "fit_eval:", &ev);
        nncc_array_free(y);
    }

    /* Every fixture entry was compared: nothing Keras recorded is skipped. */
    for (int i = 0; i < fx->n; i++)
        if (!fx->e[i].used) {
            print_error("%s: fixture entry '%s' was not checked\n", gc->name, fx->e[i].name);
            c.bad++;
        }
    print_message("%s: %lld values compared; the largest difference is %.2f of the tolerance "
                  "(%s)\n",
                  gc->name, (long long)c.compared, c.worst, c.worst_what);
    nncc_array_free(x);
    nncc_model_free(m);
    fx_free(fx);
    if (c.bad)
        fail_msg("%s: %d value(s) differ from Keras", gc->name, c.bad);
}

int main(void)
{
    struct CMUnitTest tests[N_CASES];
    for (int i = 0; i < N_CASES; i++)
        tests[i] = (struct CMUnitTest){.name = cases[i].name,
                                       .test_func = test_case,
                                       .initial_state = (void *)&cases[i]};
    return cmocka_run_group_tests_name("golden", tests, NULL, NULL);
}
