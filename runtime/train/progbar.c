/*
 * progbar.c — Keras 2.15's progress bar (keras/utils/generic_utils.py
 * Progbar, as ProgbarLogger drives it), character for character.
 *
 * verbose=1: `  7/469 [>.............................] - ETA: 3s - loss: 2.1… `
 * redrawn in place (\b × previous width, then \r) at most every 0.05 s on
 * a terminal; the last update of an epoch always draws and ends the line:
 * `469/469 [==============================] - 2s 4ms/step - loss: … - val_loss: …`.
 * When the stream is not a terminal only that final line is written.
 * verbose=2 writes one line per epoch: `469/469 - 2s - loss: … - 2s/epoch - 4ms/step`.
 * Values print as %.4f when |v| > 1e-3, else %.4e; the step time ignores
 * the first step (which includes warm-up).
 */
#include <math.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "runtime/train/train.h"

double nncc_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void nncc_progbar_init(struct nncc_progbar *pb, FILE *out, int target, int verbose)
{
    memset(pb, 0, sizeof *pb);
    pb->out = out;
    pb->target = target;
    pb->verbose = verbose;
    pb->dynamic = isatty(fileno(out));
    pb->start = pb->epoch_start = nncc_now();
}

/* Keras' _format_time: " 4ms/step". */
static int format_time(char *buf, size_t size, double t, const char *unit)
{
    if (t >= 1 || t == 0)
        return snprintf(buf, size, " %.0fs/%s", t, unit);
    if (t >= 1e-3)
        return snprintf(buf, size, " %.0fms/%s", t * 1e3, unit);
    return snprintf(buf, size, " %.0fus/%s", t * 1e6, unit);
}

static int format_values(char *buf, size_t size, const struct nncc_logs *logs, bool abs_test)
{
    int len = 0;
    for (int i = 0; logs && i < logs->n && (size_t)len < size; i++) {
        double v = logs->values[i];
        /* verbose=2 tests v > 1e-3 without abs (a Keras quirk kept on purpose). */
        bool fixed = abs_test ? fabs(v) > 1e-3 : v > 1e-3;
        len += snprintf(buf + len, size - (size_t)len, fixed ? " - %s: %.4f" : " - %s: %.4e",
                        logs->names[i], v);
    }
    return len;
}

static int digits(int n)
{
    int d = 1;
    while (n >= 10) {
        n /= 10;
        d++;
    }
    return d;
}

void nncc_progbar_update(struct nncc_progbar *pb, int current, const struct nncc_logs *logs,
                         bool finalize)
{
    double now = nncc_now();
    /* Keras' _estimate_step_duration: after step 1, ignore it. */
    double per_step = 0;
    if (current) {
        if (pb->have_first_step && current > 1)
            per_step = (now - pb->after_first_step) / (current - 1);
        else
            per_step = (now - pb->start) / current;
        if (current == 1) {
            pb->after_first_step = now;
            pb->have_first_step = true;
        }
    }
    char info[4096], vals[3072];
    if (pb->verbose == 1) {
        if (!finalize && (now - pb->last_update < 0.05 || !pb->dynamic))
            return;
        char bar[256];
        int nd = digits(pb->target);
        int len = snprintf(bar, sizeof bar, "%*d/%d [", nd, current, pb->target);
        int width = (int)(30.0 * current / pb->target);
        for (int i = 0; i < width - 1 && len < 200; i++)
            bar[len++] = '=';
        if (width > 0)
            bar[len++] = current < pb->target ? '>' : '=';
        for (int i = width; i < 30 && len < 250; i++)
            bar[len++] = '.';
        bar[len++] = ']';
        bar[len] = '\0';
        int ilen;
        if (finalize) {
            ilen = snprintf(info, sizeof info, " - %.0fs", now - pb->start);
            ilen += format_time(info + ilen, sizeof info - (size_t)ilen, per_step, "step");
        } else {
            double eta = per_step * (pb->target - current);
            if (eta > 3600)
                ilen = snprintf(info, sizeof info, " - ETA: %d:%02d:%02d", (int)(eta / 3600),
                                (int)fmod(eta, 3600) / 60, (int)fmod(eta, 60));
            else if (eta > 60)
                ilen = snprintf(info, sizeof info, " - ETA: %d:%02d", (int)(eta / 60),
                                (int)fmod(eta, 60));
            else
                ilen = snprintf(info, sizeof info, " - ETA: %ds", (int)eta);
        }
        format_values(vals, sizeof vals, logs, true);
        ilen += snprintf(info + ilen, sizeof info - (size_t)ilen, "%s", vals);
        int prev = pb->total_width;
        pb->total_width = len + ilen;
        if (pb->dynamic) {
            for (int i = 0; i < prev; i++)
                fputc('\b', pb->out);
            fputc('\r', pb->out);
        }
        fputs(bar, pb->out);
        fputs(info, pb->out);
        for (int i = pb->total_width; pb->dynamic && i < prev; i++)
            fputc(' ', pb->out);
        if (finalize)
            fputc('\n', pb->out);
        fflush(pb->out);
    } else if (pb->verbose == 2 && finalize) {
        int nd = digits(pb->target);
        int ilen = snprintf(info, sizeof info, "%*d/%d - %.0fs", nd, current, pb->target,
                            now - pb->start);
        format_values(vals, sizeof vals, logs, false);
        ilen += snprintf(info + ilen, sizeof info - (size_t)ilen, "%s -", vals);
        double epoch = now - pb->epoch_start;
        ilen += format_time(info + ilen, sizeof info - (size_t)ilen, epoch, "epoch");
        ilen += snprintf(info + ilen, sizeof info - (size_t)ilen, " -");
        format_time(info + ilen, sizeof info - (size_t)ilen, epoch / pb->target, "step");
        fprintf(pb->out, "%s\n", info);
        fflush(pb->out);
    }
    pb->last_update = now;
}
