/*
 * prelude/gemm.c - the GEMM core that generated matmuls and convolutions
 * call.  It is not part of libnncc: cmake/embed.cmake turns this file into a
 * string, and codegen/emit.c writes it at the top of every generated unit
 * that needs it (tests/test_gemm.c also compiles it directly).  It must
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
