/*
 * keras.h — Keras model configurations (the JSON of .h5 and .keras files)
 * read into nncc models and written from them (frontend/, internal).
 *
 * Reading (keras_config.c) translates a Keras 2 (tf-keras) or Keras 3
 * config into nncc's own architecture JSON and rebuilds it with
 * model_from_config (serialize.c), so every option goes through the layer
 * constructors.  Each Keras field is either mapped, checked to hold the one
 * value nncc implements (a null regularizer, "channels_last", float32), or
 * documented as harmless (an initializer's seed: the weights come from the
 * file); anything else is an error naming the layer, its class and the
 * field.  Nested models called once are flattened into the outer model;
 * the place of each nncc layer's weights in the file is returned as a
 * keras_loc.
 *
 * Writing (keras_config_write.c) makes the config Keras 2.15 (major 2) or
 * Keras 3 (major 3) writes for the same model.
 */
#ifndef NNCC_FRONTEND_KERAS_H
#define NNCC_FRONTEND_KERAS_H

#include <jansson.h>
#include "frontend.h"

/* Where one nncc layer's weights are in a Keras file. */
struct keras_loc {
    char *layer;    /* the nncc layer's name (= the Keras layer's name) */
    char *h5_group; /* .h5: the top-level layer under model_weights/ holding its weights */
    char *path;     /* .keras: its folder in model.weights.h5, "layers/sequential/layers/dense" */
};

struct keras_arch {
    nncc_model *m;
    struct keras_loc *locs; /* one per nncc layer that has weights, model order */
    int n_locs;
};

/* Builds the model a Keras model config describes (the "model_config" of
 * an .h5 file or config.json of a .keras archive, the whole object with
 * "class_name" and "config").  keras_major (2 or 3) selects the meaning of
 * names that changed (hard_sigmoid).  label names the file in messages.
 * On failure returns NNCC_ERR_FORMAT / NNCC_ERR_UNSUPPORTED with the
 * error set and a->m NULL. */
enum nncc_status keras_model_from_config(json_t *config, int keras_major, const char *label,
                                         struct keras_arch *a);
void keras_arch_free(struct keras_arch *a); /* the locations; not the model */

/* A layer's Keras weight names in Keras' order ("kernel", "bias", "gamma",
 * …), as nncc names them after the layer's name and '/'. */
const char *keras_weight_short(const nncc_tensor *w);

/* The Keras config of a model ({"class_name", "config", …}), for major 2
 * (tf-keras 2.15, .h5 files) or 3 (Keras 3, .keras archives).  The model's
 * layers must all have Keras classes (OnnxNode layers do not: an error
 * naming the layer).  NULL with the error set on failure. */
json_t *keras_config_write(const nncc_model *m, int keras_major);

/* The folder of layer i's variables in a .keras archive's model.weights.h5
 * ("layers/dense_1"): Keras names a container's members by the snake_case
 * of their class, numbered in list order. */
void keras_layer_path(const nncc_model *m, int i, char *buf, size_t size);

#endif
