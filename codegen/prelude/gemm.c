/*
 * prelude/gemm.c - the GEMM core that generated matmuls and convolutions
 * call.  It is not part of libnncc: cmake/embed.cmake turns this file into a
 * string, and codegen/emit.c writes it at the top of every generated unit
 * that needs it (tests/codegen/test_gemm.c also compiles it directly).  It must
 * stay ASCII and warning-free under -Wall -Wextra with GCC and Clang.
 *
 * nn_gemm computes C (mxn) = or += A (mxk) * B (kxn) for operands given by
 * element strides, so transposed operands cost nothing extra.  B is copied
 * ("packed") into contiguous, zero-padded panels of NN_NR columns; a
 * register-blocked micro-kernel computes NN_MRxNN_NR tiles of C with
 * NN_MR*2 vector accumulators (GCC/Clang vector extensions: AVX-512, AVX2
 * or whatever the target has), broadcasting A's elements straight from
 * where they are: A is not packed, because each of a tile's six rows is a
 * sequential stream (row-major or transposed alike) that the prefetchers
 * follow, and packing it cost as much as the multiply for our shapes (a
 * 222x64x288 product ran at 50% of one core's peak with A packed, 90%
 * without).  Blocking follows Goto's scheme: a KCxNR panel of B stays in
 * L1 while MC rows of A stream through.  Edge tiles compute all six rows
 * (repeating a valid one) and store only the valid part, so any m, n, k
 * works.  Single-threaded: callers split rows (or the output's
 * rows) over threads, so the summation order of every element, and thus the
 * result, does not depend on the thread count.  Stack use: about 200 KiB.
 *
 * For few rows (a batch-1 dense layer) nn_gemm_direct reads B in place,
 * unpacked, and nn_taps_rows does the same for rows given as runs of taps
 * (a convolution's receptive fields read straight from the image); both
 * sum every element exactly as nn_gemm does, so which path a row takes
 * never changes a result.
 */
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* The micro-kernel's a*b + c must become FMAs; GCC under -std=c11 does not
 * contract without being told. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT ON
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=fast")
#endif

#if defined(__AVX512F__)
#define NN_VW 16
#elif defined(__AVX__)
#define NN_VW 8
#else
#define NN_VW 4
#endif
#define NN_MR 6
#define NN_NR (2 * NN_VW)
#define NN_KC 384 /* the most; k is split into equal blocks of at most this */
#define NN_MC 96
#define NN_NC 128

/* Not every unit calls every function. */
#define NN_FN static __attribute__((unused))
/* Inlined into each caller, to be specialized to its constant shapes. */
#define NN_FN_INLINE static inline __attribute__((unused, always_inline))

typedef float nn_vf __attribute__((vector_size(NN_VW * sizeof(float))));

NN_FN inline nn_vf nn_load(const float *p)
{
    nn_vf v;
    memcpy(&v, p, sizeof v);
    return v;
}

NN_FN inline void nn_store(float *p, nn_vf v) { memcpy(p, &v, sizeof v); }

NN_FN inline long nn_min(long a, long b) { return a < b ? a : b; }

/* Threads the caller may split work over (1 without OpenMP). */
NN_FN inline long nn_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

/* Rows per block when `rows` are split over threads: a multiple of NN_MR,
 * at most `cap`, and at least one block per thread when there is enough. */
NN_FN inline long nn_row_block(long rows, long cap)
{
    long nt = nn_threads();
    long rb = (rows + nt - 1) / nt;
    rb = (rb + NN_MR - 1) / NN_MR * NN_MR;
    if (rb > cap)
        rb = cap;
    return rb < NN_MR ? NN_MR : rb;
}

/* B (kcxnc) as panels of NN_NR columns: panel q holds b[p][j] at
 * out[(q*kc + p)*NN_NR + j], columns past nc as zeros. */
NN_FN void nn_pack_b(long kc, long nc, const float *restrict b, long sbk, long sbj,
                      float *restrict out)
{
    for (long j0 = 0; j0 < nc; j0 += NN_NR) {
        long nr = nn_min(NN_NR, nc - j0);
        for (long p = 0; p < kc; p++) {
            const float *bp = b + p * sbk + j0 * sbj;
            if (sbj == 1 && nr == NN_NR)
                memcpy(out, bp, sizeof(float) * NN_NR);
            else {
                for (long j = 0; j < nr; j++)
                    out[j] = bp[j * sbj];
                for (long j = nr; j < NN_NR; j++)
                    out[j] = 0.0f;
            }
            out += NN_NR;
        }
    }
}

/* One NN_MRxNN_NR tile of C: A read in place (row i at a + i*rsa, step
 * csa along k; rows past mr repeat row 0 and are not stored), B from a
 * packed panel; only mrxnr is stored. */
NN_FN inline void nn_micro(long kc, const float *restrict a, long rsa, long csa,
                            const float *restrict b, float *restrict c, long ldc, int accumulate,
                            long mr, long nr)
{
    const float *restrict a0 = a, *restrict a1 = a + (mr > 1 ? rsa : 0);
    const float *restrict a2 = a + (mr > 2 ? 2 * rsa : 0), *restrict a3 = a + (mr > 3 ? 3 * rsa : 0);
    const float *restrict a4 = a + (mr > 4 ? 4 * rsa : 0), *restrict a5 = a + (mr > 5 ? 5 * rsa : 0);
    nn_vf c00 = {0}, c01 = {0}, c10 = {0}, c11 = {0}, c20 = {0}, c21 = {0};
    nn_vf c30 = {0}, c31 = {0}, c40 = {0}, c41 = {0}, c50 = {0}, c51 = {0};
    for (long p = 0, q = 0; p < kc; p++, q += csa) {
        const nn_vf b0 = nn_load(b), b1 = nn_load(b + NN_VW);
        nn_vf ai;
        ai = a0[q] - (nn_vf){0}; c00 += ai * b0; c01 += ai * b1;
        ai = a1[q] - (nn_vf){0}; c10 += ai * b0; c11 += ai * b1;
        ai = a2[q] - (nn_vf){0}; c20 += ai * b0; c21 += ai * b1;
        ai = a3[q] - (nn_vf){0}; c30 += ai * b0; c31 += ai * b1;
        ai = a4[q] - (nn_vf){0}; c40 += ai * b0; c41 += ai * b1;
        ai = a5[q] - (nn_vf){0}; c50 += ai * b0; c51 += ai * b1;
        b += NN_NR;
    }
    const nn_vf acc[NN_MR][2] = {{c00, c01}, {c10, c11}, {c20, c21},
                                 {c30, c31}, {c40, c41}, {c50, c51}};
    if (mr == NN_MR && nr == NN_NR) {
        for (long i = 0; i < NN_MR; i++) {
            float *ci = c + i * ldc;
            if (accumulate) {
                nn_store(ci, nn_load(ci) + acc[i][0]);
                nn_store(ci + NN_VW, nn_load(ci + NN_VW) + acc[i][1]);
            } else {
                nn_store(ci, acc[i][0]);
                nn_store(ci + NN_VW, acc[i][1]);
            }
        }
        return;
    }
    float t[NN_MR][NN_NR];
    for (long i = 0; i < NN_MR; i++) {
        nn_store(t[i], acc[i][0]);
        nn_store(t[i] + NN_VW, acc[i][1]);
    }
    for (long i = 0; i < mr; i++)
        for (long j = 0; j < nr; j++)
            c[i * ldc + j] = accumulate ? c[i * ldc + j] + t[i][j] : t[i][j];
}

/* k split into equal blocks of at most NN_KC: 288 is one block, not 256 + 32. */
NN_FN inline long nn_kblock(long k)
{
    long blocks = (k + NN_KC - 1) / NN_KC;
    return blocks > 0 ? (k + blocks - 1) / blocks : 1;
}

/* Floats nn_pack_b_all writes for a k x n B: at most k * (n rounded up to
 * 32), whatever the target's vector width (emitters size scratch by it). */
NN_FN inline long nn_packed_size(long k, long n) { return k * ((n + NN_NR - 1) / NN_NR * NN_NR); }

/* One k block of C (+)= A * B with B packed (kc x nc, panels of NN_NR). */
NN_FN void nn_gemm_block(long m, long nc, long kc, const float *a, long sai, long sak,
                          const float *bpack, float *c, long ldc, int acc)
{
    for (long ic = 0; ic < m; ic += NN_MC)
        for (long jr = 0; jr < nc; jr += NN_NR)
            for (long ir = ic; ir < nn_min(ic + NN_MC, m); ir += NN_MR)
                nn_micro(kc, a + ir * sai, sai, sak, bpack + jr * kc, c + ir * ldc + jr, ldc, acc,
                         nn_min(NN_MR, m - ir), nn_min(NN_NR, nc - jr));
}

/* B (k x n) packed whole, in the order nn_gemm_packed reads it: NC column
 * blocks, k blocks within, panels within.  For a B used by many calls
 * (weights), packed once instead of once per call. */
NN_FN void nn_pack_b_all(long k, long n, const float *b, long sbk, long sbj, float *out)
{
    const long kb = nn_kblock(k);
    for (long jc = 0; jc < n; jc += NN_NC) {
        long nc = nn_min(NN_NC, n - jc);
        for (long pc = 0; pc < k; pc += kb) {
            long kc = nn_min(kb, k - pc);
            nn_pack_b(kc, nc, b + pc * sbk + jc * sbj, sbk, sbj, out);
            out += kc * ((nc + NN_NR - 1) / NN_NR * NN_NR);
        }
    }
}

NN_FN void nn_zero_rows(long m, long n, float *c, long ldc)
{
    for (long i = 0; i < m; i++)
        memset(c + i * ldc, 0, sizeof(float) * (size_t)n);
}

/* The blocked product over NC column blocks and k blocks; B comes packed
 * whole from bp (nn_pack_b_all), or, when bp is NULL, from b through its
 * strides, packed block by block on the stack. */
NN_FN void nn_gemm_run(long m, long n, long k, const float *a, long sai, long sak,
                       const float *b, long sbk, long sbj, const float *bp, float *c, long ldc,
                       int accumulate)
{
    float bpack[NN_KC * ((NN_NC + NN_NR - 1) / NN_NR * NN_NR)] __attribute__((aligned(64)));
    if (k <= 0) {
        if (!accumulate)
            nn_zero_rows(m, n, c, ldc);
        return;
    }
    const long kb = nn_kblock(k);
    for (long jc = 0; jc < n; jc += NN_NC) {
        long nc = nn_min(NN_NC, n - jc);
        for (long pc = 0; pc < k; pc += kb) {
            long kc = nn_min(kb, k - pc);
            const float *panel = bp;
            if (bp) {
                bp += kc * ((nc + NN_NR - 1) / NN_NR * NN_NR);
            } else {
                nn_pack_b(kc, nc, b + pc * sbk + jc * sbj, sbk, sbj, bpack);
                panel = bpack;
            }
            nn_gemm_block(m, nc, kc, a + pc * sak, sai, sak, panel, c + jc, ldc,
                          accumulate || pc > 0);
        }
    }
}

/* C = A*B (accumulate 0) or C += A*B (accumulate 1) with B from
 * nn_pack_b_all. */
NN_FN void nn_gemm_packed(long m, long n, long k, const float *a, long sai, long sak,
                          const float *bp, float *c, long ldc, int accumulate)
{
    nn_gemm_run(m, n, k, a, sai, sak, NULL, 0, 0, bp, c, ldc, accumulate);
}

/* C = A*B (accumulate 0) or C += A*B (accumulate 1), where
 * A(i, p) = a[i*sai + p*sak], B(p, j) = b[p*sbk + j*sbj], C(i, j) = c[i*ldc + j];
 * B is packed block by block on the stack. */
NN_FN void nn_gemm(long m, long n, long k, const float *a, long sai, long sak,
                   const float *b, long sbk, long sbj, float *c, long ldc, int accumulate)
{
    nn_gemm_run(m, n, k, a, sai, sak, b, sbk, sbj, NULL, c, ldc, accumulate);
}

/* ---- Few rows: no packing ----------------------------------------------
 * With few rows of A (a batch-1 dense layer is a GEMV), packing B costs
 * more than the product: it reads and writes all of B to read it once
 * more, and a 6-row tile computes 6 rows for 1.  The kernels below read B
 * in place (row-major: row t at b + t*sbk, columns contiguous) and take up
 * to four rows of A at a time, each row given as `nseg` segments of
 * `seglen` contiguous floats, segment s at a + s*sa: a plain row is one
 * segment, a convolution's receptive field is KH segments of KW*C floats
 * read straight from the image (no im2col).  Tap t = s*seglen + q meets B's
 * row t.  Every element is summed as nn_micro sums it: from zero, over t in
 * order, one multiply-add (FMA where the target has it) per tap, then
 * stored or added to C; so with the same k blocks the results are the very
 * same floats as nn_gemm's, whatever path a row takes. */

/* c = v, or c += v when accumulating. */
NN_FN_INLINE void nn_put(float *c, nn_vf v, int accumulate)
{
    nn_store(c, accumulate ? nn_load(c) + v : v);
}

/* One row times 8 vectors of columns: a lone row (a GEMV) needs 8
 * independent sums in flight to hide the multiply-add's latency. */
NN_FN_INLINE void nn_taps_1x8(long nseg, long seglen, const float *restrict a0, long sa0,
                              const float *restrict b, long sbk, float *restrict c0, int accumulate)
{
    nn_vf x0 = {0}, x1 = {0}, x2 = {0}, x3 = {0}, x4 = {0}, x5 = {0}, x6 = {0}, x7 = {0};
    for (long s = 0; s < nseg; s++, a0 += sa0)
        for (long q = 0; q < seglen; q++, b += sbk) {
            const nn_vf ai = a0[q] - (nn_vf){0};
            x0 += ai * nn_load(b); x1 += ai * nn_load(b + NN_VW);
            x2 += ai * nn_load(b + 2 * NN_VW); x3 += ai * nn_load(b + 3 * NN_VW);
            x4 += ai * nn_load(b + 4 * NN_VW); x5 += ai * nn_load(b + 5 * NN_VW);
            x6 += ai * nn_load(b + 6 * NN_VW); x7 += ai * nn_load(b + 7 * NN_VW);
        }
    nn_put(c0, x0, accumulate), nn_put(c0 + NN_VW, x1, accumulate);
    nn_put(c0 + 2 * NN_VW, x2, accumulate), nn_put(c0 + 3 * NN_VW, x3, accumulate);
    nn_put(c0 + 4 * NN_VW, x4, accumulate), nn_put(c0 + 5 * NN_VW, x5, accumulate);
    nn_put(c0 + 6 * NN_VW, x6, accumulate), nn_put(c0 + 7 * NN_VW, x7, accumulate);
}

/* nc <= 2*NN_VW floats of v0, v1 (two vectors) to c (or added to it). */
NN_FN_INLINE void nn_put2(float *c, nn_vf v0, nn_vf v1, long nc, int accumulate)
{
    if (nc == 2 * NN_VW) {
        nn_put(c, v0, accumulate), nn_put(c + NN_VW, v1, accumulate);
        return;
    }
    float t[2 * NN_VW];
    nn_store(t, v0), nn_store(t + NN_VW, v1);
    for (long j = 0; j < nc; j++)
        c[j] = accumulate ? c[j] + t[j] : t[j];
}

/* Four rows (row i at ai, segment stride sai; ci NULL: a repeated row, not
 * stored) times nc <= 2*NN_VW columns in two vectors, whose lanes past nc
 * are not stored.  Eight sums in flight however narrow the output (a
 * 10-way classifier, a 16-filter convolution).  The loads are whole
 * vectors, reading into B's next row, while that stays inside B (tap t's
 * vectors do while t*sbk + 2*NN_VW <= (taps - 1)*sbk + nc); the last few
 * taps are read from a zero-padded copy. */
NN_FN_INLINE void nn_taps_4x2(long nseg, long seglen, const float *restrict a0, long sa0,
                              const float *restrict a1, long sa1, const float *restrict a2,
                              long sa2, const float *restrict a3, long sa3,
                              const float *restrict b, long sbk, long nc, float *restrict c0,
                              float *restrict c1, float *restrict c2, float *restrict c3,
                              int accumulate)
{
    const long taps = nseg * seglen, past = (taps - 1) * sbk + nc - 2 * NN_VW;
    const long tfull = nc == 2 * NN_VW ? taps : past < 0 ? 0 : nn_min(taps, past / sbk + 1);
    float tail[(2 * NN_VW + 2) * 2 * NN_VW];
    for (long t = tfull; t < taps; t++) {
        float *d = tail + (t - tfull) * 2 * NN_VW;
        for (long j = 0; j < 2 * NN_VW; j++)
            d[j] = j < nc ? b[t * sbk + j] : 0.0f;
    }
    nn_vf x0 = {0}, x1 = {0}, y0 = {0}, y1 = {0}, z0 = {0}, z1 = {0}, u0 = {0}, u1 = {0};
    for (long s = 0, t = 0; s < nseg; s++, a0 += sa0, a1 += sa1, a2 += sa2, a3 += sa3)
        for (long q = 0; q < seglen; q++, t++, b += sbk) {
            const float *bt = t < tfull ? b : tail + (t - tfull) * 2 * NN_VW;
            const nn_vf b0 = nn_load(bt), b1 = nn_load(bt + NN_VW);
            nn_vf ai = a0[q] - (nn_vf){0};
            x0 += ai * b0; x1 += ai * b1;
            ai = a1[q] - (nn_vf){0};
            y0 += ai * b0; y1 += ai * b1;
            ai = a2[q] - (nn_vf){0};
            z0 += ai * b0; z1 += ai * b1;
            ai = a3[q] - (nn_vf){0};
            u0 += ai * b0; u1 += ai * b1;
        }
    nn_put2(c0, x0, x1, nc, accumulate);
    if (c1)
        nn_put2(c1, y0, y1, nc, accumulate);
    if (c2)
        nn_put2(c2, z0, z1, nc, accumulate);
    if (c3)
        nn_put2(c3, u0, u1, nc, accumulate);
}

/* Rows i < m of A (row i's taps nseg segments of seglen floats, segment
 * s at a + i*sr + s*sa) times B (nseg*seglen x n, row t at b + t*sbk):
 * C row i (at c + i*ldc) = or += the products, all n columns.  Four rows
 * at a time; a lone row in 8-vector steps first. */
NN_FN_INLINE void nn_taps_rows(long m, long sr, long nseg, long seglen, long sa, const float *a,
                               const float *b, long sbk, long n, float *c, long ldc,
                               int accumulate)
{
    for (long i = 0; i < m; i += 4) {
        /* Missing rows repeat row i and are not stored. */
        const long rows = nn_min(4, m - i);
        const float *a0 = a + i * sr, *a1 = rows > 1 ? a0 + sr : a0;
        const float *a2 = rows > 2 ? a0 + 2 * sr : a0, *a3 = rows > 3 ? a0 + 3 * sr : a0;
        float *c0 = c + i * ldc;
        long j = 0;
        if (rows == 1)
            for (; j + 8 * NN_VW <= n; j += 8 * NN_VW)
                nn_taps_1x8(nseg, seglen, a0, sa, b + j, sbk, c0 + j, accumulate);
        for (; j < n; j += 2 * NN_VW)
            nn_taps_4x2(nseg, seglen, a0, sa, a1, sa, a2, sa, a3, sa, b + j, sbk,
                        nn_min(2 * NN_VW, n - j), c0 + j, rows > 1 ? c0 + ldc + j : NULL,
                        rows > 2 ? c0 + 2 * ldc + j : NULL, rows > 3 ? c0 + 3 * ldc + j : NULL,
                        accumulate);
    }
}

/* Rows up to which nn_gemm_direct beats packing B (measured on 784x128,
 * 1600x10, 128x10 and 288x64 Bs): callers choose by the product's rows. */
#define NN_DIRECT_M 4

/* C = A*B (accumulate 0) or C += A*B (accumulate 1) as nn_gemm, the same
 * floats, without packing: A's rows contiguous (A(i, p) = a[i*sai + p]),
 * B row-major (B(p, j) = b[p*sbk + j]). */
NN_FN void nn_gemm_direct(long m, long n, long k, const float *a, long sai, const float *b,
                          long sbk, float *c, long ldc, int accumulate)
{
    if (k <= 0) {
        if (!accumulate)
            nn_zero_rows(m, n, c, ldc);
        return;
    }
    const long kb = nn_kblock(k);
    for (long pc = 0; pc < k; pc += kb)
        nn_taps_rows(m, sai, 1, nn_min(kb, k - pc), 0, a + pc, b + pc * sbk, sbk, n, c, ldc,
                     accumulate || pc > 0);
}
