/*
 * safetensors.h — the safetensors container shared by the weights files
 * (runtime/io/safetensors.c) and whole-model files (runtime/io/model_io.c)
 * (internal).
 *
 * st_write() writes a list of F32 tensors and a metadata object of strings
 * atomically (temporary file, fsync, rename); with `checksum` it adds
 * "checksum": the SHA-256 hex of the data section.  st_open() validates a
 * file's container completely (header length, JSON, every entry's dtype,
 * shape and offsets, the tiling of the data section, metadata strings)
 * before anything is read; st_read() then reads one entry's values and
 * st_data_sha256() hashes the data section in bounded memory.  Every error
 * names `who` ("load_weights", "load"), the file and the problem.
 */
#ifndef NNCC_RUNTIME_SAFETENSORS_H
#define NNCC_RUNTIME_SAFETENSORS_H

#include <jansson.h>
#include <stdio.h>
#include "runtime/train/train.h"

/* One tensor to write. */
struct st_tensor {
    const char *name;
    struct nncc_shape shape;
    const float *data;
};

/* meta: a JSON object of strings (borrowed); "checksum" is added when asked. */
enum nncc_status st_write(const char *path, const char *who, const struct st_tensor *t, int n,
                          json_t *meta, bool checksum);

/* One tensor of a file, as its header describes it. */
struct st_entry {
    const char *name; /* the header's key (valid while the file is open) */
    struct nncc_shape shape;
    uint64_t begin, end;
    bool used;        /* for the caller: matched to something */
};

/* An open, validated file. */
struct st_file {
    const char *path, *who;
    FILE *f;
    char *header;
    size_t hlen;
    uint64_t data_len;
    json_t *root;
    json_t *meta;             /* borrowed from root; NULL when absent */
    struct st_entry *ents;    /* sorted by offset */
    size_t n_ents;
};

enum nncc_status st_open(struct st_file *sf, const char *path, const char *who);
void st_close(struct st_file *sf);
/* The entry named `name`, or NULL. */
struct st_entry *st_find(struct st_file *sf, const char *name);
/* A metadata string, or NULL when absent. */
const char *st_meta(const struct st_file *sf, const char *key);
/* Reads an entry's values (host floats) into dst. */
enum nncc_status st_read(struct st_file *sf, const struct st_entry *e, float *dst);
/* The SHA-256 hex of the data section. */
enum nncc_status st_data_sha256(struct st_file *sf, char hex[65]);

/* Prints the compile configuration and training state of a compiled model
 * (`nncc summary FILE.safetensors`; runtime/io/model_io.c). */
enum nncc_status nncc_model_print_training(const nncc_model *m, FILE *out);

#endif
