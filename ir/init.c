/*
 * init.c — weight initializers with Keras' exact formulas and defaults
 * (keras/initializers/initializers.py, VarianceScaling).
 *
 * Fans: rank 1 → both shape[0]; rank 2 → (shape[0], shape[1]); a conv
 * kernel (kh, kw, in, out) → in·kh·kw and out·kh·kw.  n is fan_in, fan_out
 * or their mean, at least 1.  Uniform draws in ±√(3·scale/n); truncated
 * normal draws σ = √(scale/n)/0.87962566103423978 and redraws beyond ±2σ.
 * Every value comes from the stream keyed by (seed, weight name), so the
 * same seed gives the same weights everywhere.
 */
#include <math.h>
#include "init.h"
#include "rng.h"

static void fans(struct nncc_shape s, double *fan_in, double *fan_out)
{
    if (s.rank < 1) {
        *fan_in = *fan_out = 1;
    } else if (s.rank == 1) {
        *fan_in = *fan_out = (double)s.dim[0];
    } else if (s.rank == 2) {
        *fan_in = (double)s.dim[0];
        *fan_out = (double)s.dim[1];
    } else {
        double rf = 1;
        for (int i = 0; i < s.rank - 2; i++)
            rf *= (double)s.dim[i];
        *fan_in = (double)s.dim[s.rank - 2] * rf;
        *fan_out = (double)s.dim[s.rank - 1] * rf;
    }
}

enum mode { FAN_IN, FAN_OUT, FAN_AVG };

static double truncated(struct nncc_rng *r, double sd)
{
    for (;;) {
        double v = nncc_rng_normal(r);
        if (v >= -2.0 && v <= 2.0)
            return v * sd;
    }
}

static void variance_scaling(float *w, int64_t n, struct nncc_shape s, double scale, enum mode mode,
                             bool uniform, struct nncc_rng *r)
{
    double fi, fo;
    fans(s, &fi, &fo);
    double f = mode == FAN_IN ? fi : mode == FAN_OUT ? fo : (fi + fo) / 2;
    if (f < 1)
        f = 1;
    double var = scale / f;
    if (uniform) {
        double limit = sqrt(3.0 * var);
        for (int64_t i = 0; i < n; i++)
            w[i] = (float)((2.0 * nncc_rng_uniform(r) - 1.0) * limit);
    } else {
        double sd = sqrt(var) / 0.87962566103423978;
        for (int64_t i = 0; i < n; i++)
            w[i] = (float)truncated(r, sd);
    }
}

void nncc_init_fill(float *w, struct nncc_shape s, enum nncc_initializer kind, uint64_t key)
{
    int64_t n = 1;
    for (int i = 0; i < s.rank; i++)
        n *= s.dim[i];
    struct nncc_rng r;
    nncc_rng_seed(&r, key);
    switch (kind) {
    case NNCC_INIT_DEFAULT: /* callers resolve defaults; treat as zeros */
    case NNCC_ZEROS:
        for (int64_t i = 0; i < n; i++)
            w[i] = 0.0f;
        break;
    case NNCC_ONES:
        for (int64_t i = 0; i < n; i++)
            w[i] = 1.0f;
        break;
    case NNCC_GLOROT_UNIFORM: variance_scaling(w, n, s, 1.0, FAN_AVG, true, &r); break;
    case NNCC_GLOROT_NORMAL: variance_scaling(w, n, s, 1.0, FAN_AVG, false, &r); break;
    case NNCC_HE_NORMAL: variance_scaling(w, n, s, 2.0, FAN_IN, false, &r); break;
    case NNCC_HE_UNIFORM: variance_scaling(w, n, s, 2.0, FAN_IN, true, &r); break;
    case NNCC_LECUN_NORMAL: variance_scaling(w, n, s, 1.0, FAN_IN, false, &r); break;
    case NNCC_LECUN_UNIFORM: variance_scaling(w, n, s, 1.0, FAN_IN, true, &r); break;
    case NNCC_RANDOM_NORMAL:
        for (int64_t i = 0; i < n; i++)
            w[i] = (float)(0.05 * nncc_rng_normal(&r));
        break;
    case NNCC_RANDOM_UNIFORM:
        for (int64_t i = 0; i < n; i++)
            w[i] = (float)(-0.05 + 0.1 * nncc_rng_uniform(&r));
        break;
    case NNCC_TRUNCATED_NORMAL:
        for (int64_t i = 0; i < n; i++)
            w[i] = (float)truncated(&r, 0.05);
        break;
    case NNCC_INITIALIZER_COUNT:
        break;
    }
}
