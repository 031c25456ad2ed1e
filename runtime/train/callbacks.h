/*
 * callbacks.h — what Keras' built-in callbacks share (runtime/train/
 * callbacks.c), for those defined elsewhere: ModelCheckpoint lives with
 * the model files it writes (runtime/io/checkpoint.c).  Internal.
 */
#ifndef NNCC_RUNTIME_CALLBACKS_H
#define NNCC_RUNTIME_CALLBACKS_H

#include "runtime/train/train.h"

/* Python's repr(float): the shortest digits that read back as v,
 * positional for exponents in [-4, 16), otherwise d.ddde±XX.  buf needs
 * 32 bytes. */
char *cb_py_repr(double v, char *buf, size_t size);
/* The value of log `name`; false when there is none. */
bool cb_logs_find(const struct nncc_logs *logs, const char *name, double *value);
/* A malloc'd copy (NULL when out of memory). */
char *cb_copy_string(const char *s);
/* "loss,accuracy,val_loss": the keys, as Keras' ",".join(logs.keys()). */
char *cb_key_list(const struct nncc_logs *logs, char *buf, size_t size);
/* Keras' logging.warning() text on stderr. */
void cb_warn(const char *fmt, ...) NNCC_PRINTF(1, 2);
/* A failure during training: the error is set, printed, and training stops. */
void cb_fail_training(nncc_model *m, enum nncc_status status, const char *fmt, ...)
    NNCC_PRINTF(3, 4);
/* Keras' print(): a line on stdout. */
void cb_say(const char *fmt, ...) NNCC_PRINTF(1, 2);
/* A callback that refuses to train, with the message (for bad options). */
struct nncc_callback cb_bad_options(const char *fmt, ...) NNCC_PRINTF(1, 2);
/* A callback that reports running out of memory when training begins. */
struct nncc_callback cb_out_of_memory(void);
/* Keras falls back to auto for an unknown mode, with a warning. */
enum nncc_mode cb_check_mode(enum nncc_mode mode, const char *what);

#endif
