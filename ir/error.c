/*
 * error.c — the per-thread last error behind nncc_last_error().
 *
 * Kept per thread (like errno) so that concurrent users of the library do
 * not see each other's messages; it is the only state outside the handles.
 */
#include <stdarg.h>
#include <string.h>
#include "error.h"

#define NNCC_ERROR_CAP 16384

static _Thread_local enum nncc_status last_status;
static _Thread_local char last_message[NNCC_ERROR_CAP];

enum nncc_status nncc_fail(enum nncc_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_message, sizeof last_message, fmt, ap);
    va_end(ap);
    last_status = status;
    return status;
}

const char *nncc_last_error(void) { return last_message; }

enum nncc_status nncc_last_status(void) { return last_status; }

void nncc_clear_error(void)
{
    last_status = NNCC_OK;
    last_message[0] = '\0';
}

const char *nncc_status_name(enum nncc_status status)
{
    switch (status) {
    case NNCC_OK: return "ok";
    case NNCC_ERR_ARG: return "invalid argument";
    case NNCC_ERR_SHAPE: return "shape error";
    case NNCC_ERR_GRAPH: return "graph error";
    case NNCC_ERR_IO: return "I/O error";
    case NNCC_ERR_FORMAT: return "format error";
    case NNCC_ERR_COMPILE: return "compile error";
    case NNCC_ERR_NOMEM: return "out of memory";
    case NNCC_ERR_UNSUPPORTED: return "unsupported";
    }
    return "unknown status";
}
