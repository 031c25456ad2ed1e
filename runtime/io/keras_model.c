/*
 * keras_model.c — Keras model files: nncc_load and nncc_save of .h5 (Keras
 * 2's HDF5 format, tf-keras 2.x and Keras 3's legacy writer) and .keras
 * (the zip archive of tf-keras 2.13+ and Keras 3).
 *
 * Reading: the architecture (the root's "model_config" attribute, or
 * config.json) becomes a model through frontend/keras.h, which also says
 * where each layer's weights are.  Weights are matched by name in .h5
 * files (model_weights/<group>'s "weight_names": "dense/kernel:0") and by
 * position in .keras archives (layers/<member>/vars/<k>, Keras' order);
 * every shape is checked, and a weight the file lacks or has in excess is
 * an error naming it.  When the file has a compile configuration, the
 * model is compiled with it and the optimizer's state is restored: the
 * iteration count, the learning rate (Keras 3 keeps the current one as a
 * variable; Keras 2 in the optimizer's config) and every slot (Keras 2 .h5:
 * "Adam/m/dense/kernel:0"; Keras 3 .h5: "adam/dense_kernel_momentum";
 * .keras: optimizer/vars/<k> in the order Keras builds them, see
 * keras_var_index), so fit continues the Keras run.
 *
 * Writing: .h5 as tf-keras 2.15 writes it (which Keras 3 also loads), .keras
 * as Keras 3 writes it; both with the compile configuration and optimizer
 * state when the model is compiled.  Files are written whole in memory and
 * replace the target atomically.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include "runtime/io/atomic.h"
#include "runtime/io/keras_h5.h"
#include "runtime/io/keras_io.h"
#include "runtime/io/keras_zip.h"

int keras_file_kind(const char *path)
{
    const char *dot = path ? strrchr(path, '.') : NULL;
    if (!dot || strchr(dot, '/'))
        return 0;
    if (strcasecmp(dot, ".h5") == 0 || strcasecmp(dot, ".hdf5") == 0)
        return 'h';
    if (strcasecmp(dot, ".keras") == 0)
        return 'k';
    return 0;
}

/* ---- Optimizer slots: nncc's names and Keras' --------------------------- */

/* Keras builds an optimizer's variables in groups: within a group, each
 * model variable's slots in turn (Adam: m, v of the first kernel, then of
 * its bias…); groups one after another (Adam's vhat after every m and v;
 * RMSprop's momentums after every velocity). */
struct slot_name {
    const char *k2, *k3; /* tf-keras 2.x and Keras 3 names */
    int group;
};

static struct slot_name slot_keras(const char *nncc)
{
    static const struct {
        const char *nncc;
        struct slot_name k;
    } map[] = {
        {"m", {"m", "momentum", 0}},
        {"v", {"v", "velocity", 0}},
        {"vhat", {"vhat", "velocity_hat", 1}},
        {"momentum", {"momentum", "momentum", 1}}, /* RMSprop's; SGD's below */
        {"velocity", {"velocity", "velocity", 0}},
        {"average_gradient", {"average_gradient", "average_gradient", 2}},
        {"accumulator", {"accumulator", "accumulator", 0}},
    };
    for (size_t i = 0; i < sizeof map / sizeof *map; i++)
        if (strcmp(map[i].nncc, nncc) == 0)
            return map[i].k;
    return (struct slot_name){nncc, nncc, 0};
}

static struct slot_name slot_of(const struct nncc_train_state *t, int s)
{
    if (t->opts.optimizer.kind == NNCC_SGD) /* tf-keras names SGD's momentum "m" */
        return (struct slot_name){"m", "momentum", 0};
    struct slot_name k = slot_keras(t->slot_names[s]);
    if (t->opts.optimizer.kind == NNCC_RMSPROP && strcmp(t->slot_names[s], "momentum") == 0)
        k.group = 1;
    return k;
}

/* The position of slot s of parameter p among optimizer/vars, after
 * `base` leading variables (the iteration; Keras 3 also the learning rate). */
static int keras_var_index(const struct nncc_train_state *t, int p, int s, int base)
{
    int idx = base, g = slot_of(t, s).group;
    int in_group = 0, before = 0;
    for (int q = 0; q < t->n_slots; q++) {
        int gq = slot_of(t, q).group;
        if (gq < g)
            idx += t->n_params;
        else if (gq == g) {
            in_group++;
            if (q < s)
                before++;
        }
    }
    return idx + p * in_group + before;
}

/* ---- Reading ----------------------------------------------------------- */

static nncc_layer *layer_by_name(nncc_model *m, const char *name)
{
    for (int i = 0; i < m->n_layers; i++)
        if (strcmp(m->layers[i]->name, name) == 0)
            return m->layers[i];
    return NULL;
}

static enum nncc_status read_weight(struct kh5 *f, const char *dset, nncc_tensor *w)
{
    struct nncc_shape s;
    enum nncc_status st = kh5_shape(f, dset, &s);
    if (st)
        return st;
    if (!ir_shape_eq(s, w->shape)) {
        char a[160], b[160];
        return nncc_fail(NNCC_ERR_SHAPE, "'%s': weight \"%s\" (%s) has shape %s in the file but "
                         "%s in the model", kh5_label(f), w->name, dset, ir_dims_str(s, a, sizeof a),
                         ir_dims_str(w->shape, b, sizeof b));
    }
    return kh5_read_f32(f, dset, w->data, ir_shape_numel(w->shape, 0));
}

/* The dataset of weight `w` (layer `layer`) among a group's weight_names:
 * "<…/>layer/short[:N]". */
static const char *find_weight_name(char **names, int n, const char *layer, const char *shortn)
{
    size_t ll = strlen(layer), sl = strlen(shortn);
    for (int i = 0; i < n; i++) {
        const char *e = names[i];
        const char *slash = strrchr(e, '/');
        if (!slash || strncmp(slash + 1, shortn, sl) != 0 ||
            (slash[1 + sl] != 0 && slash[1 + sl] != ':'))
            continue;
        size_t pl = (size_t)(slash - e);
        if (pl >= ll && strncmp(slash - ll, layer, ll) == 0 && (pl == ll || slash[-(long)ll - 1] == '/'))
            return e;
    }
    return NULL;
}

static enum nncc_status h5_weights(struct kh5 *f, nncc_model *m, const struct keras_arch *a)
{
    /* each group's weight_names are counted so extra weights are caught */
    enum nncc_status st = NNCC_OK;
    for (int i = 0; i < a->n_locs && !st; i++) {
        nncc_layer *l = layer_by_name(m, a->locs[i].layer);
        if (!l)
            continue;
        char group[NNCC_MAX_NAME + 32];
        snprintf(group, sizeof group, "model_weights/%s", a->locs[i].h5_group);
        char **names = NULL;
        int n = kh5_attr_strings(f, group, "weight_names", &names);
        if (n < 0)
            return nncc_last_status();
        int expect = 0;
        for (int k = 0; k < a->n_locs; k++)
            if (strcmp(a->locs[k].h5_group, a->locs[i].h5_group) == 0) {
                nncc_layer *lk = layer_by_name(m, a->locs[k].layer);
                expect += lk ? lk->n_weights : 0;
            }
        if (n != expect)
            st = nncc_fail(NNCC_ERR_FORMAT, "'%s': %s has %d weights (weight_names) but the "
                           "model's layers there have %d", kh5_label(f), group, n, expect);
        for (int k = 0; k < l->n_weights && !st; k++) {
            const char *e = find_weight_name(names, n, l->name, keras_weight_short(l->weights[k]));
            if (!e) {
                st = nncc_fail(NNCC_ERR_FORMAT, "'%s': no weight \"%s\" of layer \"%s\" in %s's "
                               "weight_names", kh5_label(f), keras_weight_short(l->weights[k]),
                               l->name, group);
                break;
            }
            char dset[2 * NNCC_MAX_NAME + 64];
            snprintf(dset, sizeof dset, "%s/%s", group, e);
            st = read_weight(f, dset, l->weights[k]);
        }
        kh5_strings_free(names, n);
    }
    return st;
}

static enum nncc_status keras_weights(struct kh5 *f, nncc_model *m, const struct keras_arch *a)
{
    for (int i = 0; i < a->n_locs; i++) {
        nncc_layer *l = layer_by_name(m, a->locs[i].layer);
        if (!l)
            continue;
        char vars[1100], dset[1200];
        if (strlen(a->locs[i].path) > 1000)
            return nncc_fail(NNCC_ERR_FORMAT, "'%s': layer \"%s\" is nested too deeply", kh5_label(f), l->name);
        snprintf(vars, sizeof vars, "%s/vars", a->locs[i].path);
        char **names = NULL;
        int n = kh5_children(f, vars, &names);
        if (n < 0)
            return nncc_last_status();
        kh5_strings_free(names, n);
        if (n != l->n_weights)
            return nncc_fail(NNCC_ERR_FORMAT, "'%s': %s holds %d variables but layer \"%s\" has "
                             "%d weights", kh5_label(f), vars, n, l->name, l->n_weights);
        for (int k = 0; k < l->n_weights; k++) {
            snprintf(dset, sizeof dset, "%s/%d", vars, k);
            enum nncc_status st = read_weight(f, dset, l->weights[k]);
            if (st)
                return st;
        }
    }
    return NNCC_OK;
}

static enum nncc_status read_slot(struct kh5 *f, const char *dset, nncc_tensor *slot)
{
    if (!kh5_is_dataset(f, dset))
        return nncc_fail(NNCC_ERR_FORMAT, "'%s': the optimizer state has no %s (for %s)",
                         kh5_label(f), dset, slot->name);
    return read_weight(f, dset, slot);
}

static enum nncc_status set_iterations(struct kh5 *f, const char *dset, struct nncc_train_state *t)
{
    int64_t it;
    enum nncc_status st = kh5_read_i64(f, dset, &it);
    if (st)
        return st;
    if (it < 0 || it > ((int64_t)1 << 53))
        return nncc_fail(NNCC_ERR_FORMAT, "'%s': the optimizer's iteration count %lld is out of "
                         "range", kh5_label(f), (long long)it);
    t->iterations = it;
    return NNCC_OK;
}

static enum nncc_status set_rate(struct kh5 *f, const char *dset, struct nncc_train_state *t)
{
    double lr;
    enum nncc_status st = kh5_read_f64(f, dset, &lr);
    if (st)
        return st;
    if (!(lr > 0) || lr > 1e30)
        return nncc_fail(NNCC_ERR_FORMAT, "'%s': the learning rate %g in %s is not positive",
                         kh5_label(f), lr, dset);
    t->learning_rate = (float)lr;
    return NNCC_OK;
}

/* Keras 2 .h5: optimizer_weights/<name> for each of weight_names. */
static enum nncc_status h5_optimizer_k2(struct kh5 *f, struct nncc_train_state *t)
{
    char **names = NULL;
    int n = kh5_attr_strings(f, "optimizer_weights", "weight_names", &names);
    if (n < 0)
        return nncc_last_status();
    enum nncc_status st = NNCC_OK;
    char dset[2 * NNCC_MAX_NAME + 96], want[2 * NNCC_MAX_NAME + 64];
    /* only the iteration: Keras saved a compiled model before its first
     * step built the slots; nncc's start as Keras' would */
    bool unbuilt = n == 1 && t->n_slots > 0;
    if (n != 1 + t->n_params * t->n_slots && !unbuilt)
        st = nncc_fail(NNCC_ERR_FORMAT, "'%s': the optimizer state has %d variables; %s with %d "
                       "trainable weights has %d", kh5_label(f), n,
                       t->opts.optimizer.kind == NNCC_ADAM ? "Adam" : "this optimizer",
                       t->n_params, 1 + t->n_params * t->n_slots);
    for (int i = 0; i < n && !st; i++)
        if (strcmp(names[i], "iteration:0") == 0 || strstr(names[i], "/iter:0")) {
            snprintf(dset, sizeof dset, "optimizer_weights/%s", names[i]);
            st = set_iterations(f, dset, t);
            break;
        }
    for (int p = 0; p < t->n_params && !st && !unbuilt; p++)
        for (int s = 0; s < t->n_slots && !st; s++) {
            snprintf(want, sizeof want, "/%s/%s:0", slot_of(t, s).k2, t->params[p]->name);
            const char *hit = NULL;
            size_t wl = strlen(want);
            for (int i = 0; i < n && !hit; i++) {
                size_t el = strlen(names[i]);
                if (el > wl && strcmp(names[i] + el - wl, want) == 0)
                    hit = names[i];
            }
            if (!hit) {
                st = nncc_fail(NNCC_ERR_FORMAT, "'%s': the optimizer state has no \"…%s\"",
                               kh5_label(f), want);
                break;
            }
            snprintf(dset, sizeof dset, "optimizer_weights/%s", hit);
            st = read_slot(f, dset, t->slots[p * t->n_slots + s]);
        }
    kh5_strings_free(names, n);
    return st;
}

/* A Keras 3 variable's path names the scopes it was made in: a
 * Sequential's layers' variables are "sequential/dense/kernel", so their
 * slots "sequential_dense_kernel_momentum".  dset holds base/<name>; it
 * becomes the one dataset of base ending in "_<name>", when there is one. */
static void k3_scoped_name(struct kh5 *f, const char *base, char *dset, size_t size)
{
    char **names = NULL;
    int n = kh5_children(f, base, &names);
    if (n <= 0) {
        nncc_clear_error();
        return;
    }
    const char *want = dset + strlen(base) + 1;
    size_t wl = strlen(want);
    const char *hit = NULL;
    int hits = 0;
    for (int i = 0; i < n; i++) {
        size_t l = strlen(names[i]);
        if (l > wl + 1 && names[i][l - wl - 1] == '_' && strcmp(names[i] + l - wl, want) == 0) {
            hit = names[i];
            hits++;
        }
    }
    if (hits == 1) {
        char tmp[3 * NNCC_MAX_NAME + 64];
        snprintf(tmp, sizeof tmp, "%s/%s", base, hit);
        snprintf(dset, size, "%s", tmp);
    }
    kh5_strings_free(names, n);
}

/* Keras 3 .h5: optimizer_weights/<optimizer name>/<layer>_<weight>_<slot>. */
static enum nncc_status h5_optimizer_k3(struct kh5 *f, struct nncc_train_state *t)
{
    char **groups = NULL;
    int n = kh5_children(f, "optimizer_weights", &groups);
    if (n < 0)
        return nncc_last_status();
    enum nncc_status st = NNCC_OK;
    if (n != 1) {
        st = nncc_fail(NNCC_ERR_FORMAT, "'%s': optimizer_weights holds %d groups (Keras 3 "
                       "writes one, named after the optimizer)", kh5_label(f), n);
        kh5_strings_free(groups, n);
        return st;
    }
    char base[NNCC_MAX_NAME + 32], dset[3 * NNCC_MAX_NAME + 64];
    snprintf(base, sizeof base, "optimizer_weights/%s", groups[0]);
    kh5_strings_free(groups, n);
    snprintf(dset, sizeof dset, "%s/iteration", base);
    st = set_iterations(f, dset, t);
    snprintf(dset, sizeof dset, "%s/learning_rate", base);
    if (!st)
        st = set_rate(f, dset, t);
    char **names = NULL;
    int n_vars = st ? 0 : kh5_children(f, base, &names);
    if (n_vars < 0)
        return nncc_last_status();
    kh5_strings_free(names, n_vars);
    if (n_vars == 2) /* iteration and learning rate: the slots were never built */
        return st;
    for (int p = 0; p < t->n_params && !st; p++)
        for (int s = 0; s < t->n_slots && !st; s++) {
            char wn[2 * NNCC_MAX_NAME + 2];
            snprintf(wn, sizeof wn, "%s", t->params[p]->name);
            for (char *c = wn; *c; c++)
                if (*c == '/')
                    *c = '_';
            snprintf(dset, sizeof dset, "%s/%s_%s", base, wn, slot_of(t, s).k3);
            if (!kh5_is_dataset(f, dset))
                k3_scoped_name(f, base, dset, sizeof dset);
            st = read_slot(f, dset, t->slots[p * t->n_slots + s]);
        }
    return st;
}

/* .keras: optimizer/vars/<k>. */
static enum nncc_status keras_optimizer(struct kh5 *f, struct nncc_train_state *t, int major)
{
    char **names = NULL;
    int n = kh5_children(f, "optimizer/vars", &names);
    if (n < 0)
        return nncc_last_status();
    kh5_strings_free(names, n);
    int base = major >= 3 ? 2 : 1;
    bool unbuilt = n == base; /* compiled, never trained: no slots yet */
    if (n != base + t->n_params * t->n_slots && !unbuilt)
        return nncc_fail(NNCC_ERR_FORMAT, "'%s': optimizer/vars holds %d variables; this "
                         "optimizer with %d trainable weights has %d", kh5_label(f), n,
                         t->n_params, base + t->n_params * t->n_slots);
    enum nncc_status st = set_iterations(f, "optimizer/vars/0", t);
    if (!st && major >= 3)
        st = set_rate(f, "optimizer/vars/1", t);
    char dset[64];
    for (int p = 0; p < t->n_params && !st && !unbuilt; p++)
        for (int s = 0; s < t->n_slots && !st; s++) {
            snprintf(dset, sizeof dset, "optimizer/vars/%d", keras_var_index(t, p, s, base));
            st = read_slot(f, dset, t->slots[p * t->n_slots + s]);
        }
    return st;
}

/* Compiles m as the file's compile configuration says. */
static enum nncc_status compile_from(const char *label, nncc_model *m, json_t *cfg)
{
    struct nncc_compile_opts o;
    bool have_lr;
    enum nncc_status st = keras_compile_read(label, cfg, &o, &have_lr);
    if (st)
        return st;
    if (nncc_compile_(m, o)) {
        char msg[1024];
        snprintf(msg, sizeof msg, "'%s': the compile configuration: %s", label, nncc_last_error());
        return nncc_fail(NNCC_ERR_FORMAT, "%s", msg);
    }
    return NNCC_OK;
}

static json_t *parse_json(const char *label, const char *what, const char *text, size_t len)
{
    json_error_t err;
    json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
    if (!j)
        nncc_fail(NNCC_ERR_FORMAT, "'%s': %s is not valid JSON (line %d: %s)", label, what,
                  err.line, err.text);
    return j;
}

static int major_of(const char *version)
{
    return version && version[0] == '3' ? 3 : 2;
}

static nncc_model *load_h5(const char *path)
{
    struct kh5 *f = kh5_open(path, path);
    if (!f)
        return NULL;
    nncc_model *m = NULL;
    json_t *mc = NULL, *tc = NULL;
    char *text = NULL, *ver = NULL;
    struct keras_arch a = {0};
    if (!kh5_has_attr(f, "/", "model_config")) {
        nncc_fail(NNCC_ERR_FORMAT, "'%s': no model_config attribute: not a whole Keras model "
                  "(a file from save_weights holds weights only)", path);
        goto done;
    }
    if (kh5_has_attr(f, "/", "keras_version") && !(ver = kh5_attr_string(f, "/", "keras_version")))
        goto done;
    if (ver && ver[0] == '1') {
        nncc_fail(NNCC_ERR_UNSUPPORTED, "'%s': a Keras %s file (Keras 1) is not supported", path,
                  ver);
        goto done;
    }
    if (!(text = kh5_attr_string(f, "/", "model_config")) ||
        !(mc = parse_json(path, "model_config", text, strlen(text))))
        goto done;
    if (keras_model_from_config(mc, major_of(ver), path, &a))
        goto done;
    m = a.m;
    if (!kh5_is_group(f, "model_weights")) {
        nncc_fail(NNCC_ERR_FORMAT, "'%s': no model_weights group", path);
        goto fail;
    }
    if (h5_weights(f, m, &a))
        goto fail;
    if (kh5_has_attr(f, "/", "training_config")) {
        free(text);
        if (!(text = kh5_attr_string(f, "/", "training_config")) ||
            !(tc = parse_json(path, "training_config", text, strlen(text))) ||
            compile_from(path, m, tc))
            goto fail;
        if (kh5_is_group(f, "optimizer_weights") &&
            (major_of(ver) >= 3 ? h5_optimizer_k3(f, m->train) : h5_optimizer_k2(f, m->train)))
            goto fail;
    }
    goto done;
fail:
    nncc_model_free(m);
    m = NULL;
done:
    keras_arch_free(&a);
    json_decref(mc);
    json_decref(tc);
    free(text);
    free(ver);
    kh5_close(f);
    return m;
}

static nncc_model *load_keras(const char *path)
{
    struct kzip_member zm[3] = {{.name = "config.json"},
                                {.name = "metadata.json", .optional = true},
                                {.name = "model.weights.h5"}};
    if (kzip_read(path, zm, 3))
        return NULL;
    nncc_model *m = NULL;
    json_t *cfg = NULL, *meta = NULL;
    struct kh5 *f = NULL;
    struct keras_arch a = {0};
    char label[4200];
    snprintf(label, sizeof label, "%s:model.weights.h5", path);
    if (zm[1].data && !(meta = parse_json(path, "metadata.json", zm[1].data, zm[1].size)))
        goto done;
    int major = meta ? major_of(json_string_value(json_object_get(meta, "keras_version"))) : 3;
    if (!(cfg = parse_json(path, "config.json", zm[0].data, zm[0].size)))
        goto done;
    if (keras_model_from_config(cfg, major, path, &a))
        goto done;
    m = a.m;
    if (!(f = kh5_open_image(zm[2].data, zm[2].size, label)) || keras_weights(f, m, &a))
        goto fail;
    json_t *cc = json_object_get(cfg, "compile_config");
    if (cc && !json_is_null(cc)) {
        if (compile_from(path, m, cc))
            goto fail;
        if (kh5_is_group(f, "optimizer/vars") && keras_optimizer(f, m->train, major))
            goto fail;
    }
    goto done;
fail:
    nncc_model_free(m);
    m = NULL;
done:
    keras_arch_free(&a);
    json_decref(cfg);
    json_decref(meta);
    kh5_close(f);
    kzip_members_free(zm, 3);
    return m;
}

nncc_model *keras_load(const char *path)
{
    return keras_file_kind(path) == 'k' ? load_keras(path) : load_h5(path);
}

/* ---- Writing ------------------------------------------------------------ */

#define KERAS2_VERSION "2.15.1" /* the format written: tf-keras 2.15's */
#define KERAS3_VERSION "3.15.1" /* Keras 3's .keras format */

static enum nncc_status set_json_attr(struct kh5 *f, const char *obj, const char *name, json_t *j)
{
    char *s = j ? json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    enum nncc_status st = s ? kh5_set_attr_string(f, obj, name, s)
                            : nncc_fail(NNCC_ERR_NOMEM, "save: out of memory (Keras config)");
    free(s);
    return st;
}

static enum nncc_status write_image(struct kh5 *f, const char *path)
{
    void *data = NULL;
    size_t size = 0;
    enum nncc_status st = kh5_image(f, &data, &size);
    if (st)
        return st;
    struct atomic_file af;
    st = atomic_open(&af, path, "save");
    if (!st) {
        FILE *out = fdopen(af.fd, "wb");
        if (!out) {
            atomic_abort(&af, NULL);
            st = nncc_fail(NNCC_ERR_IO, "save '%s': cannot write", path);
        } else if (fwrite(data, 1, size, out) != size) {
            atomic_abort(&af, out);
            st = nncc_fail(NNCC_ERR_IO, "save '%s': write failed", path);
        } else {
            st = atomic_commit(&af, out, "save", path);
        }
    }
    free(data);
    return st;
}

static enum nncc_status save_h5(const nncc_model *m, const char *path)
{
    const struct nncc_train_state *t = m->train;
    struct kh5 *f = kh5_create(path);
    if (!f)
        return nncc_last_status();
    enum nncc_status st = NNCC_OK;
    json_t *mc = keras_config_write(m, 2);
    if (!mc)
        st = nncc_last_status();
    if (!st)
        st = kh5_set_attr_string(f, "/", "keras_version", KERAS2_VERSION);
    if (!st)
        st = kh5_set_attr_string(f, "/", "backend", "tensorflow");
    if (!st)
        st = kh5_set_attr_string(f, "/", "nncc_version", NNCC_VERSION_STRING);
    if (!st)
        st = set_json_attr(f, "/", "model_config", mc);
    if (!st && t) {
        json_t *tc = keras_compile_write(&t->opts, t->learning_rate, 2);
        st = set_json_attr(f, "/", "training_config", tc);
        json_decref(tc);
    }
    /* model_weights: one group per layer, its weights under its own name */
    const char **lnames = malloc(sizeof *lnames * (size_t)(m->n_layers + 1));
    if (!lnames && !st)
        st = nncc_fail(NNCC_ERR_NOMEM, "save '%s': out of memory", path);
    if (!st)
        st = kh5_group(f, "model_weights");
    for (int i = 0; i < m->n_layers && !st; i++) {
        const nncc_layer *l = m->layers[i];
        lnames[i] = l->name;
        char group[NNCC_MAX_NAME + 32], dset[2400];
        const char *wn[LAYER_MAX_WEIGHTS];
        char wbuf[LAYER_MAX_WEIGHTS][2 * NNCC_MAX_NAME + 8];
        snprintf(group, sizeof group, "model_weights/%s", l->name);
        st = kh5_group(f, group);
        for (int k = 0; k < l->n_weights && !st; k++) {
            snprintf(wbuf[k], sizeof wbuf[k], "%s:0", l->weights[k]->name);
            wn[k] = wbuf[k];
            snprintf(dset, sizeof dset, "%s/%s", group, wbuf[k]);
            st = kh5_write_f32(f, dset, l->weights[k]->shape, l->weights[k]->data);
        }
        if (!st)
            st = kh5_set_attr_strings(f, group, "weight_names", wn, l->n_weights);
    }
    if (!st)
        st = kh5_group(f, "model_weights/top_level_model_weights");
    if (!st)
        st = kh5_set_attr_strings(f, "model_weights/top_level_model_weights", "weight_names",
                                  NULL, 0);
    if (!st)
        st = kh5_set_attr_strings(f, "model_weights", "layer_names", lnames, m->n_layers);
    if (!st)
        st = kh5_set_attr_string(f, "model_weights", "backend", "tensorflow");
    if (!st)
        st = kh5_set_attr_string(f, "model_weights", "keras_version", KERAS2_VERSION);
    free(lnames);
    /* optimizer_weights: iteration, then the slots in Keras' build order */
    if (!st && t && t->n_params) {
        int nv = 1 + t->n_params * t->n_slots;
        char **names = calloc((size_t)nv, sizeof *names);
        const char *cls = t->opts.optimizer.kind == NNCC_SGD       ? "SGD"
                          : t->opts.optimizer.kind == NNCC_ADAM    ? "Adam"
                          : t->opts.optimizer.kind == NNCC_ADAGRAD ? "Adagrad"
                                                                   : "RMSprop";
        if (!names)
            st = nncc_fail(NNCC_ERR_NOMEM, "save '%s': out of memory", path);
        if (!st)
            st = kh5_group(f, "optimizer_weights");
        if (!st) {
            names[0] = strdup("iteration:0");
            st = names[0] ? kh5_write_i64(f, "optimizer_weights/iteration:0", t->iterations)
                          : nncc_fail(NNCC_ERR_NOMEM, "save: out of memory");
        }
        for (int p = 0; p < t->n_params && !st; p++)
            for (int s = 0; s < t->n_slots && !st; s++) {
                int k = keras_var_index(t, p, s, 1);
                names[k] = ir_strfmt("%s/%s/%s:0", cls, slot_of(t, s).k2, t->params[p]->name);
                char *dset = names[k] ? ir_strfmt("optimizer_weights/%s", names[k]) : NULL;
                const nncc_tensor *sl = t->slots[p * t->n_slots + s];
                st = dset ? kh5_write_f32(f, dset, sl->shape, sl->data)
                          : nncc_fail(NNCC_ERR_NOMEM, "save: out of memory");
                free(dset);
            }
        if (!st)
            st = kh5_set_attr_strings(f, "optimizer_weights", "weight_names",
                                      (const char *const *)names, nv);
        for (int i = 0; names && i < nv; i++)
            free(names[i]);
        free(names);
    }
    if (!st)
        st = write_image(f, path);
    json_decref(mc);
    kh5_close(f);
    return st;
}

/* model.weights.h5 of a .keras archive, in memory. */
static enum nncc_status keras_weights_image(const nncc_model *m, const char *label, void **data,
                                            size_t *size)
{
    const struct nncc_train_state *t = m->train;
    struct kh5 *f = kh5_create(label);
    if (!f)
        return nncc_last_status();
    enum nncc_status st = kh5_group(f, "vars");
    char path[1100], dset[1300];
    if (!st && m->sequential) /* Keras 3 counts the Sequential's InputLayer */
        st = kh5_group(f, "layers/input_layer/vars");
    for (int i = 0; i < m->n_layers && !st; i++) {
        const nncc_layer *l = m->layers[i];
        keras_layer_path(m, i, path, sizeof path);
        snprintf(dset, sizeof dset, "%s/vars", path);
        st = kh5_group(f, dset);
        for (int k = 0; k < l->n_weights && !st; k++) {
            snprintf(dset, sizeof dset, "%s/vars/%d", path, k);
            st = kh5_write_f32(f, dset, l->weights[k]->shape, l->weights[k]->data);
        }
    }
    if (!st && t) {
        st = kh5_group(f, "optimizer/vars");
        if (!st)
            st = kh5_write_i64(f, "optimizer/vars/0", t->iterations);
        if (!st)
            st = kh5_write_f32(f, "optimizer/vars/1", (struct nncc_shape){.rank = 0},
                               &t->learning_rate);
        for (int p = 0; p < t->n_params && !st; p++)
            for (int s = 0; s < t->n_slots && !st; s++) {
                const nncc_tensor *sl = t->slots[p * t->n_slots + s];
                snprintf(dset, sizeof dset, "optimizer/vars/%d", keras_var_index(t, p, s, 2));
                st = kh5_write_f32(f, dset, sl->shape, sl->data);
            }
    }
    if (!st)
        st = kh5_image(f, data, size);
    kh5_close(f);
    return st;
}

static enum nncc_status save_keras(const nncc_model *m, const char *path)
{
    const struct nncc_train_state *t = m->train;
    json_t *cfg = keras_config_write(m, 3);
    if (!cfg)
        return nncc_last_status();
    if (t)
        json_object_set_new(cfg, "compile_config",
                            keras_compile_write(&t->opts, t->learning_rate, 3));
    char date[32];
    time_t now = time(NULL);
    struct tm tm;
    strftime(date, sizeof date, "%Y-%m-%d@%H:%M:%S", localtime_r(&now, &tm));
    json_t *meta = json_pack("{s:s,s:s,s:s}", "keras_version", KERAS3_VERSION, "date_saved", date,
                             "nncc_version", NNCC_VERSION_STRING);
    char *ctext = json_dumps(cfg, JSON_COMPACT | JSON_ENSURE_ASCII);
    char *mtext = meta ? json_dumps(meta, JSON_COMPACT) : NULL;
    json_decref(cfg);
    json_decref(meta);
    void *w = NULL;
    size_t wsize = 0;
    enum nncc_status st = !ctext || !mtext
                              ? nncc_fail(NNCC_ERR_NOMEM, "save '%s': out of memory", path)
                              : keras_weights_image(m, path, &w, &wsize);
    if (!st) {
        struct kzip_member zm[3] = {
            {.name = "metadata.json", .data = mtext, .size = strlen(mtext)},
            {.name = "config.json", .data = ctext, .size = strlen(ctext)},
            {.name = "model.weights.h5", .data = w, .size = wsize},
        };
        st = kzip_write(path, "save", zm, 3);
    }
    free(ctext);
    free(mtext);
    free(w);
    return st;
}

enum nncc_status keras_save(const nncc_model *m, const char *path)
{
    if (!model_check_ready(m))
        return nncc_last_status();
    return keras_file_kind(path) == 'k' ? save_keras(m, path) : save_h5(m, path);
}
