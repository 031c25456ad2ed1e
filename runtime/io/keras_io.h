/*
 * keras_io.h — Keras model files (.h5, .keras) for nncc_load / nncc_save
 * (runtime/io/, internal).
 *
 * keras_model.c reads and writes the files (architecture through
 * frontend/keras.h, weights and optimizer state through keras_h5.h and
 * keras_zip.h); keras_compile.c translates the compile configuration.
 */
#ifndef NNCC_RUNTIME_KERAS_IO_H
#define NNCC_RUNTIME_KERAS_IO_H

#include <jansson.h>
#include <stdbool.h>
#include "frontend/keras.h"
#include "runtime/train/train.h"

/* Which Keras file a path names by its extension: 0 none, 'h' .h5/.hdf5,
 * 'k' .keras. */
int keras_file_kind(const char *path);

nncc_model *keras_load(const char *path);
enum nncc_status keras_save(const nncc_model *m, const char *path);

/* The compile configuration: read (training_config or compile_config; the
 * optimizer's learning rate is in o; *have_lr says whether the file gave
 * one) and written for Keras `major` 2 (training_config) or 3
 * (compile_config), with learning rate lr. */
enum nncc_status keras_compile_read(const char *label, json_t *cfg, struct nncc_compile_opts *o,
                                    bool *have_lr);
json_t *keras_compile_write(const struct nncc_compile_opts *o, float lr, int major);
json_t *keras_optimizer_json(const struct nncc_optimizer *o, float lr, int major);

#endif
