/*
 * onnx_io.h — ONNX files (runtime/io/, internal): the protobuf reader
 * (onnx_read.c) and the importer (onnx_import.c).  The message types come
 * from onnx.pb-c.h, generated at build time by protoc-c from the onnx.proto
 * of Debian's libonnx-dev.
 */
#ifndef NNCC_IO_ONNX_IO_H
#define NNCC_IO_ONNX_IO_H

#include "onnx.pb-c.h"
#include "frontend/onnx.h"

/* The model in path, unpacked; NULL with the error set. */
Onnx__ModelProto *onnx_model_read(const char *path);
void onnx_model_free(Onnx__ModelProto *m);

/* A tensor's values, both as floats and as int64s (whichever its type). */
struct onnx_tensor {
    struct nncc_shape shape;
    int64_t count;
    int dtype;   /* ONNX TensorProto.DataType */
    bool is_int; /* an integer or bool type */
    float *f;
    int64_t *i;
};
/* Converts t (external data read relative to dir; NULL: not allowed). */
bool onnx_tensor_values(const Onnx__TensorProto *t, const char *dir, struct onnx_tensor *out);
void onnx_tensor_free(struct onnx_tensor *t);
const char *onnx_dtype_name(int dt);

#endif
