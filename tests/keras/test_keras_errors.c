/*
 * test_keras_errors.c — Keras files nncc must refuse, each with a clear
 * error that names the file, the layer, its class and the field: configs
 * with what nncc lacks (classes, regularizers, dtypes, frozen layers,
 * Keras 3's hard_sigmoid, optimizers, losses), configs that are wrong (a
 * reference to a layer that does not exist, a cycle, weights of the wrong
 * shape), and damaged or hostile containers (truncated, not HDF5 or zip, a
 * weights-only file, a member path that climbs out of the archive).
 *
 * The bad files are made here from a real Keras fixture: its config.json
 * is edited with jansson and the archive rewritten with the same weights.
 */
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "nncc.h"
#include "runtime/io/keras_h5.h"
#include "runtime/io/keras_zip.h"

#define FIX NNCC_SOURCE_DIR "/tests/keras/fixtures/"

static char tmpdir[] = "/tmp/nncc-keras-errors-XXXXXX";

/* Loads `path`, which must fail with `code` and a message holding every
 * string of the NULL-terminated list. */
static void expect_refused(const char *path, enum nncc_status code, ...)
{
    nncc_model *m = nncc_load(path);
    if (m) {
        nncc_model_free(m);
        fail_msg("%s: loaded, but should be refused", path);
    }
    const char *msg = nncc_last_error();
    if (nncc_last_status() != code)
        fail_msg("%s: status %d, expected %d: %s", path, nncc_last_status(), code, msg);
    va_list ap;
    va_start(ap, code);
    for (const char *s; (s = va_arg(ap, const char *));)
        if (!strstr(msg, s))
            fail_msg("%s: the message lacks \"%s\": %s", path, s, msg);
    va_end(ap);
}

/* A copy of fixture `base` (a .keras) whose config.json `edit` changed. */
static const char *edited(const char *base, const char *name, void (*edit)(json_t *cfg))
{
    static char out[600];
    char in[512];
    snprintf(in, sizeof in, FIX "%s", base);
    snprintf(out, sizeof out, "%s/%s", tmpdir, name);
    struct kzip_member zm[3] = {{.name = "metadata.json"},
                                {.name = "config.json"},
                                {.name = "model.weights.h5"}};
    assert_int_equal(kzip_read(in, zm, 3), NNCC_OK);
    json_t *cfg = json_loadb(zm[1].data, zm[1].size, 0, NULL);
    assert_non_null(cfg);
    edit(cfg);
    char *text = json_dumps(cfg, JSON_COMPACT);
    free(zm[1].data);
    zm[1].data = text;
    zm[1].size = strlen(text);
    assert_int_equal(kzip_write(out, "test", zm, 3), NNCC_OK);
    json_decref(cfg);
    kzip_members_free(zm, 3);
    return out;
}

/* The layer entry of mixed.k3.keras named `name`. */
static json_t *layer(json_t *cfg, const char *name)
{
    size_t i;
    json_t *l;
    json_array_foreach(json_object_get(json_object_get(cfg, "config"), "layers"), i, l)
        if (strcmp(json_string_value(json_object_get(l, "name")), name) == 0)
            return l;
    fail_msg("no layer %s", name);
    return NULL;
}

static json_t *lcfg(json_t *cfg, const char *name)
{
    return json_object_get(layer(cfg, name), "config");
}

/* The first argument of a layer's first call. */
static json_t *first_history(json_t *cfg, const char *name)
{
    json_t *node = json_array_get(json_object_get(layer(cfg, name), "inbound_nodes"), 0);
    json_t *arg = json_array_get(json_object_get(node, "args"), 0);
    return json_object_get(json_object_get(arg, "config"), "keras_history");
}

static void ed_unknown_ref(json_t *c) { json_array_set_new(first_history(c, "dense_1"), 0, json_string("nope")); }
static void ed_cycle(json_t *c) { json_array_set_new(first_history(c, "dense"), 0, json_string("dense_2")); }
static void ed_class(json_t *c) { json_object_set_new(layer(c, "dense_1"), "class_name", json_string("LSTM")); }
static void ed_regularizer(json_t *c)
{
    json_object_set_new(lcfg(c, "dense_1"), "kernel_regularizer",
                        json_pack("{s:s,s:{s:f}}", "class_name", "L2", "config", "l2", 0.01));
}
static void ed_unknown_field(json_t *c) { json_object_set_new(lcfg(c, "dense"), "frobnicate", json_integer(1)); }
static void ed_dtype(json_t *c)
{
    json_object_set_new(lcfg(c, "dense"), "dtype",
                        json_pack("{s:s,s:{s:s}}", "class_name", "DTypePolicy", "config", "name",
                                  "mixed_float16"));
}
static void ed_frozen(json_t *c) { json_object_set_new(lcfg(c, "dense_2"), "trainable", json_false()); }
static void ed_hard_sigmoid(json_t *c) { json_object_set_new(lcfg(c, "dense_2"), "activation", json_string("hard_sigmoid")); }
static void ed_custom_act(json_t *c)
{
    json_object_set_new(lcfg(c, "dense_2"), "activation",
                        json_pack("{s:s,s:s}", "class_name", "function", "config", "my_act"));
}
static void ed_units(json_t *c) { json_object_set_new(lcfg(c, "dense_2"), "units", json_integer(4)); }
static void ed_init(json_t *c)
{
    json_object_set_new(lcfg(c, "dense"), "kernel_initializer",
                        json_pack("{s:s,s:{s:f,s:f}}", "class_name", "RandomNormal", "config",
                                  "mean", 0.0, "stddev", 1.0));
}
static void ed_optimizer(json_t *c)
{
    json_t *o = json_object_get(json_object_get(c, "compile_config"), "optimizer");
    json_object_set_new(o, "class_name", json_string("Nadam"));
}
static void ed_weight_decay(json_t *c)
{
    json_t *o = json_object_get(json_object_get(c, "compile_config"), "optimizer");
    json_object_set_new(json_object_get(o, "config"), "weight_decay", json_real(0.004));
}
static void ed_loss(json_t *c) { json_object_set_new(json_object_get(c, "compile_config"), "loss", json_string("huber")); }
static void ed_kwargs(json_t *c)
{
    json_t *node = json_array_get(json_object_get(layer(c, "dense_1"), "inbound_nodes"), 0);
    json_object_set_new(node, "kwargs", json_pack("{s:b}", "use_cache", 1));
}
/* Functional models nested 200 deep (each level's only layer the next). */
static void ed_deep(json_t *c)
{
    json_t *inner = json_pack("{s:s,s:s,s:{s:s,s:i}}", "class_name", "Dense", "name", "d",
                              "config", "name", "d", "units", 2);
    for (int k = 200; k > 0; k--) {
        char in[32], name[32], next[32];
        snprintf(in, sizeof in, "in_%d", k);
        snprintf(name, sizeof name, "m_%d", k);
        snprintf(next, sizeof next, "%s", json_string_value(json_object_get(inner, "name")));
        json_object_set_new(inner, "inbound_nodes", json_pack("[[[sii{}]]]", in, 0, 0));
        json_t *layers = json_pack("[{s:s,s:s,s:{s:[ni],s:s},s:[]},o]", "class_name",
                                   "InputLayer", "name", in, "config", "batch_shape", 12, "name",
                                   in, "inbound_nodes", inner);
        inner = json_pack("{s:s,s:s,s:{s:s,s:o,s:[[sii]],s:[[sii]]}}", "class_name",
                          "Functional", "name", name, "config", "name", name, "layers", layers,
                          "input_layers", in, 0, 0, "output_layers", next, 0, 0);
    }
    json_object_set(c, "config", json_object_get(inner, "config"));
    json_object_set_new(c, "class_name", json_string("Functional"));
    json_object_del(c, "compile_config");
    json_decref(inner);
}

static void ed_no_layers(json_t *c) { json_object_del(json_object_get(c, "config"), "layers"); }

static void test_config_errors(void **state)
{
    (void)state;
    const char *b = "mixed.k3.keras";
    expect_refused(edited(b, "ref.keras", ed_unknown_ref), NNCC_ERR_FORMAT, "ref.keras", "nope",
                   NULL);
    expect_refused(edited(b, "cycle.keras", ed_cycle), NNCC_ERR_FORMAT, "cycle.keras", "cycle",
                   NULL);
    expect_refused(edited(b, "class.keras", ed_class), NNCC_ERR_UNSUPPORTED, "dense_1", "LSTM",
                   NULL);
    expect_refused(edited(b, "reg.keras", ed_regularizer), NNCC_ERR_UNSUPPORTED, "dense_1",
                   "Dense", "kernel_regularizer", NULL);
    expect_refused(edited(b, "field.keras", ed_unknown_field), NNCC_ERR_UNSUPPORTED, "\"dense\"",
                   "Dense", "frobnicate", NULL);
    expect_refused(edited(b, "dtype.keras", ed_dtype), NNCC_ERR_UNSUPPORTED, "dtype",
                   "mixed_float16", NULL);
    expect_refused(edited(b, "frozen.keras", ed_frozen), NNCC_ERR_UNSUPPORTED, "dense_2",
                   "trainable", NULL);
    expect_refused(edited(b, "hsig.keras", ed_hard_sigmoid), NNCC_ERR_UNSUPPORTED, "dense_2",
                   "hard_sigmoid", NULL);
    expect_refused(edited(b, "act.keras", ed_custom_act), NNCC_ERR_UNSUPPORTED, "dense_2",
                   "activation", NULL);
    expect_refused(edited(b, "units.keras", ed_units), NNCC_ERR_SHAPE, "dense_2/kernel", NULL);
    expect_refused(edited(b, "init.keras", ed_init), NNCC_ERR_UNSUPPORTED, "RandomNormal",
                   "stddev", NULL);
    expect_refused(edited(b, "opt.keras", ed_optimizer), NNCC_ERR_UNSUPPORTED, "optimizer",
                   "Nadam", NULL);
    expect_refused(edited(b, "wd.keras", ed_weight_decay), NNCC_ERR_UNSUPPORTED, "weight_decay",
                   NULL);
    expect_refused(edited(b, "loss.keras", ed_loss), NNCC_ERR_UNSUPPORTED, "loss", "huber", NULL);
    expect_refused(edited(b, "kwargs.keras", ed_kwargs), NNCC_ERR_UNSUPPORTED, "dense_1",
                   "use_cache", NULL);
    expect_refused(edited(b, "nolayers.keras", ed_no_layers), NNCC_ERR_FORMAT, "layers", NULL);
    expect_refused(edited(b, "deep.keras", ed_deep), NNCC_ERR_UNSUPPORTED, "nested more than",
                   NULL);
}

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    fclose(f);
}

static void *read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    void *d = malloc(*n);
    assert_int_equal(fread(d, 1, *n, f), *n);
    fclose(f);
    return d;
}

static void test_damaged_files(void **state)
{
    (void)state;
    char p[600];
    const char *srcs[] = {FIX "mixed.k2.h5", FIX "mixed.k3.keras"};
    const char *names[] = {"trunc.h5", "trunc.keras"};
    for (int k = 0; k < 2; k++) {
        size_t n;
        unsigned char *d = read_file(srcs[k], &n);
        snprintf(p, sizeof p, "%s/%s", tmpdir, names[k]);
        /* cut at several places: every one is a clean error */
        for (size_t cut = 0; cut < n; cut += n / 7 + 1) {
            write_file(p, d, cut);
            nncc_model *m = nncc_load(p);
            if (m)
                fail_msg("%s cut at %zu bytes loaded", srcs[k], cut);
            assert_non_null(strstr(nncc_last_error(), names[k]));
        }
        free(d);
    }
    snprintf(p, sizeof p, "%s/text.h5", tmpdir);
    write_file(p, "not hdf5\n", 9);
    expect_refused(p, NNCC_ERR_FORMAT, "text.h5", "HDF5", NULL);
    snprintf(p, sizeof p, "%s/text.keras", tmpdir);
    write_file(p, "not a zip\n", 10);
    expect_refused(p, NNCC_ERR_FORMAT, "text.keras", NULL);
    snprintf(p, sizeof p, "%s/missing.keras", tmpdir);
    expect_refused(p, NNCC_ERR_IO, "missing.keras", NULL);

    /* weights only (save_weights): no architecture */
    struct kh5 *f = kh5_create("weights.h5");
    assert_non_null(f);
    assert_int_equal(kh5_group(f, "dense"), NNCC_OK);
    void *img;
    size_t size;
    assert_int_equal(kh5_image(f, &img, &size), NNCC_OK);
    kh5_close(f);
    snprintf(p, sizeof p, "%s/weights.h5", tmpdir);
    write_file(p, img, size);
    free(img);
    expect_refused(p, NNCC_ERR_FORMAT, "weights.h5", "model_config", NULL);

    /* a member that climbs out of the archive (made by Python's zipfile:
     * nncc's own writer refuses such names) */
    expect_refused(NNCC_SOURCE_DIR "/tests/keras/zipcases/traversal.keras", NNCC_ERR_FORMAT,
                   "traversal.keras", "..", NULL);
}

static int setup(void **state)
{
    (void)state;
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_damaged_files),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
