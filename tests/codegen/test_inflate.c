/*
 * test_inflate.c — the deployment program's hand-written gzip/DEFLATE
 * decoder (codegen/aot/deploy_inflate.c, compiled in directly) against
 * zlib, which libnncc uses for the same files.
 *
 * Every input is decoded by both, from a heap copy of exactly its bytes
 * (the sanitizer build catches any read past it): they must both refuse it
 * or both give the same bytes.  zlib reads the members the way gzip(1) and
 * nna_gunzip do: one after another while the next two bytes are gzip's
 * magic, anything else after the last member ignored.  The inputs: every
 * gzip file of the fuzz corpora (tests/fuzz/corpus/, tests/fuzz/regress/),
 * the Fashion-MNIST test set when installed, and streams zlib writes here:
 * noise, text and runs at levels 0, 1, 6 and 9 and every strategy (stored,
 * fixed and dynamic blocks, all three checked to occur), multi-member files
 * with trailing bytes, and headers with a name, comment, extra field and
 * header CRC.  Then every prefix of the small ones (every cut must be
 * refused alike: a cut between members is a shorter valid file), a bit
 * flipped at every position of the small ones, and hand-built streams for
 * the corners zlib refuses and nna_gunzip once accepted.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "codegen/aot/deploy.h"

#define MAX_OUT ((size_t)1 << 30)

/* ---- The two decoders ----------------------------------------------------- */

/* zlib's gunzip of in: 0 with *out (malloc'd), or -1 when zlib refuses. */
static int zlib_gunzip(const unsigned char *in, size_t len, unsigned char **out, size_t *out_len)
{
    z_stream z = {0};
    assert_int_equal(inflateInit2(&z, 16 + MAX_WBITS), Z_OK); /* gzip only */
    size_t cap = 4096, n = 0, pos = 0;
    unsigned char *buf = malloc(cap);
    assert_non_null(buf);
    int rc = 0;
    for (;;) {
        z.next_in = (unsigned char *)in + pos;
        z.avail_in = (uInt)(len - pos);
        int ret;
        do {
            if (n == cap) {
                buf = realloc(buf, cap *= 2);
                assert_non_null(buf);
            }
            z.next_out = buf + n;
            z.avail_out = (uInt)(cap - n);
            ret = inflate(&z, Z_NO_FLUSH);
            n = cap - z.avail_out;
        } while (ret == Z_OK || (ret == Z_BUF_ERROR && z.avail_out == 0));
        if (ret != Z_STREAM_END) { /* damage, or the input ended first */
            rc = -1;
            break;
        }
        pos = len - z.avail_in;
        if (len - pos < 2 || in[pos] != 0x1f || in[pos + 1] != 0x8b)
            break;
        assert_int_equal(inflateReset(&z), Z_OK);
    }
    inflateEnd(&z);
    if (rc) {
        free(buf);
        buf = NULL;
        n = 0;
    }
    *out = buf;
    *out_len = n;
    return rc;
}

static int checked;  /* inputs compared */
static int accepted; /* … of which both decoded */

/* Both decoders on exactly len bytes of gz; they must agree.  Returns 0
 * when both decode, -1 when both refuse. */
static int same_as_zlib(const unsigned char *gz, size_t len, const char *what)
{
    unsigned char *copy = malloc(len ? len : 1); /* no slack: ASan sees overreads */
    assert_non_null(copy);
    if (len)
        memcpy(copy, gz, len);
    unsigned char *zout, *nout;
    size_t zlen, nlen;
    char err[300] = "";
    int zrc = zlib_gunzip(copy, len, &zout, &zlen);
    int nrc = nna_gunzip(copy, len, MAX_OUT, &nout, &nlen, err, sizeof err);
    if (zrc != nrc)
        fail_msg("%s (%zu bytes): zlib %s but nna_gunzip %s%s", what, len,
                 zrc ? "refuses it" : "decodes it", nrc ? "refuses it: " : "decodes it", err);
    if (nrc) {
        assert_null(nout);
        assert_true(err[0] != '\0');
    } else {
        if (nlen != zlen || (zlen && memcmp(nout, zout, zlen) != 0))
            fail_msg("%s: nna_gunzip gives %zu bytes, zlib %zu, not the same", what, nlen, zlen);
        accepted++;
    }
    checked++;
    free(zout);
    free(nout);
    free(copy);
    return zrc;
}

/* Every prefix (all of the first and last 64 cuts, and `samples` evenly
 * spread between them for a long input), which both must treat alike. */
static void prefixes(const unsigned char *gz, size_t len, size_t samples, const char *what)
{
    size_t step = len > 128 + samples ? (len - 128) / (samples + 1) + 1 : 1;
    for (size_t cut = 0; cut < len; cut++)
        if (cut < 64 || len - cut <= 64 || (cut - 64) % step == 0)
            same_as_zlib(gz, cut, what);
}

/* One bit flipped at each of the first `upto` positions (every bit of the
 * 10-byte header, one bit a byte after it). */
static void flips(const unsigned char *gz, size_t len, size_t upto, const char *what)
{
    unsigned char *c = malloc(len);
    assert_non_null(c);
    for (size_t pos = 0; pos < len && pos < upto; pos++)
        for (int bit = 0; bit < 8; bit++) {
            if (pos >= 10 && bit != (int)(pos % 8))
                continue;
            memcpy(c, gz, len);
            c[pos] ^= (unsigned char)(1u << bit);
            same_as_zlib(c, len, what);
        }
    free(c);
}

/* ---- Inputs zlib writes ----------------------------------------------------- */

/* A gzip member of buf at a level and strategy, with an optional header. */
static unsigned char *deflate_gz(const unsigned char *buf, size_t len, int level, int strategy,
                                 gz_header *head, size_t *out_len)
{
    z_stream z = {0};
    assert_int_equal(deflateInit2(&z, level, Z_DEFLATED, 16 + MAX_WBITS, 8, strategy), Z_OK);
    if (head)
        assert_int_equal(deflateSetHeader(&z, head), Z_OK);
    size_t cap = deflateBound(&z, (uLong)len) + 256;
    unsigned char *out = malloc(cap);
    assert_non_null(out);
    z.next_in = (unsigned char *)buf;
    z.avail_in = (uInt)len;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
    *out_len = z.total_out;
    deflateEnd(&z);
    return out;
}

/* len bytes of a kind: 0 noise, 1 text, 2 runs, 3 a mix of the three. */
static unsigned char *sample(size_t len, int kind, uint64_t seed)
{
    unsigned char *b = malloc(len + 1);
    assert_non_null(b);
    for (size_t i = 0; i < len; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        int k = kind < 3 ? kind : (int)(i / 700 % 3);
        b[i] = k == 0   ? (unsigned char)(seed >> 56)
               : k == 1 ? (unsigned char)("the quick brown fox jumps over "[(seed >> 40) % 31])
                        : (unsigned char)(i / 97);
    }
    return b;
}

/* The type of the first block of a gzip member with a plain 10-byte header. */
static int first_block_type(const unsigned char *gz) { return gz[10] >> 1 & 3; }

static void test_generated(void **state)
{
    (void)state;
    static const size_t sizes[] = {0, 1, 2, 100, 4096, 70000, 300001};
    static const int levels[] = {0, 1, 6, 9};
    static const int strategies[] = {Z_DEFAULT_STRATEGY, Z_FILTERED, Z_HUFFMAN_ONLY, Z_RLE,
                                     Z_FIXED};
    bool seen_type[3] = {false};
    for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++)
        for (int kind = 0; kind < 4; kind++) {
            unsigned char *buf = sample(sizes[si], kind, si * 4 + (uint64_t)kind);
            for (size_t li = 0; li < sizeof levels / sizeof *levels; li++)
                for (size_t st = 0; st < sizeof strategies / sizeof *strategies; st++) {
                    if (sizes[si] > 4096 && kind != 3 && st > 0)
                        continue; /* the big ones: every level, strategies on the mix */
                    size_t gz_len;
                    unsigned char *gz = deflate_gz(buf, sizes[si], levels[li], strategies[st],
                                                   NULL, &gz_len);
                    char what[120];
                    snprintf(what, sizeof what, "%zu bytes of kind %d, level %d, strategy %d",
                             sizes[si], kind, levels[li], strategies[st]);
                    assert_int_equal(same_as_zlib(gz, gz_len, what), 0);
                    seen_type[first_block_type(gz)] = true;
                    if (sizes[si] == 100 || (sizes[si] == 4096 && kind == 3 && li == 2))
                        prefixes(gz, gz_len, 64, what);
                    free(gz);
                }
            free(buf);
        }
    assert_true(seen_type[0] && seen_type[1] && seen_type[2]); /* stored, fixed, dynamic */
}

static void test_members_and_headers(void **state)
{
    (void)state;
    unsigned char *buf = sample(5000, 3, 7);
    size_t a_len, b_len, e_len, h_len;
    unsigned char *a = deflate_gz(buf, 3000, 6, Z_DEFAULT_STRATEGY, NULL, &a_len);
    unsigned char *b = deflate_gz(buf + 3000, 2000, 1, Z_FIXED, NULL, &b_len);
    unsigned char *e = deflate_gz(buf, 0, 9, Z_DEFAULT_STRATEGY, NULL, &e_len);
    /* A header with every optional field, and its CRC. */
    unsigned char extra[6] = {'n', 'n', 2, 0, 0xab, 0xcd};
    gz_header head = {.text = 1, .time = 12345, .os = 3, .extra = extra, .extra_len = 6,
                      .name = (Bytef *)"fashion.idx", .comment = (Bytef *)"a comment", .hcrc = 1};
    unsigned char *h = deflate_gz(buf, 1000, 6, Z_DEFAULT_STRATEGY, &head, &h_len);
    assert_true(h[3] == (2 | 4 | 8 | 16 | 1)); /* FHCRC FEXTRA FNAME FCOMMENT FTEXT */

    /* a + e + b + h, then bytes that are not a member */
    static const char *const tails[] = {"", "xyz", "\x1f", "\x1f\x8b", "\x1f\x8b\x08\x00junk",
                                        "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"};
    static const size_t tail_len[] = {0, 3, 1, 2, 8, 12};
    size_t cat_len = a_len + e_len + b_len + h_len;
    unsigned char *cat = malloc(cat_len + 16);
    assert_non_null(cat);
    memcpy(cat, a, a_len);
    memcpy(cat + a_len, e, e_len);
    memcpy(cat + a_len + e_len, b, b_len);
    memcpy(cat + a_len + e_len + b_len, h, h_len);
    for (size_t t = 0; t < sizeof tails / sizeof *tails; t++) {
        memcpy(cat + cat_len, tails[t], tail_len[t]);
        same_as_zlib(cat, cat_len + tail_len[t], "four members and a tail");
    }
    /* a cut at each member boundary is a valid shorter file; others are not */
    prefixes(cat, cat_len, 400, "four members, cut");
    prefixes(h, h_len, 0, "a header with every field, cut");
    flips(h, h_len, h_len, "a header with every field, one bit flipped");
    flips(b, b_len, 400, "a fixed-Huffman member's start, one bit flipped");
    flips(e, e_len, e_len, "an empty member, one bit flipped");

    free(cat);
    free(a);
    free(b);
    free(e);
    free(h);
    free(buf);
}

/* Every gzip file in dir (by its magic: corpus names vary), each prefix
 * and bit flips too. */
static void corpus_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *ent;
    while ((ent = readdir(d))) {
        if (ent->d_name[0] == '.')
            continue;
        char path[1400];
        snprintf(path, sizeof path, "%s/%s", dir, ent->d_name);
        FILE *f = fopen(path, "rb");
        if (!f)
            continue; /* a folder */
        unsigned char *bytes = NULL;
        size_t len = 0, cap = 0, got;
        do {
            if (len == cap) {
                bytes = realloc(bytes, cap = cap ? 2 * cap : 65536);
                assert_non_null(bytes);
            }
            got = fread(bytes + len, 1, cap - len, f);
            len += got;
        } while (got > 0);
        fclose(f);
        if (len >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b) {
            same_as_zlib(bytes, len, path);
            prefixes(bytes, len, 256, path);
            flips(bytes, len, 2000, path);
        }
        free(bytes);
    }
    closedir(d);
}

static void test_corpora(void **state)
{
    (void)state;
    int before = checked, files_ok = accepted;
    static const char *const parents[] = {NNCC_SOURCE_DIR "/tests/fuzz/corpus",
                                          NNCC_SOURCE_DIR "/tests/fuzz/regress"};
    for (int p = 0; p < 2; p++) {
        DIR *d = opendir(parents[p]);
        assert_true(p == 1 || d != NULL);
        struct dirent *ent;
        while (d && (ent = readdir(d)))
            if (ent->d_name[0] != '.') {
                char sub[1100];
                snprintf(sub, sizeof sub, "%s/%s", parents[p], ent->d_name);
                corpus_dir(sub);
            }
        if (d)
            closedir(d);
    }
    assert_true(checked - before > 1000 && accepted > files_ok); /* the corpus has gzip files */
    static const char *const fashion[] = {
        "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz",
        "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"};
    for (int i = 0; i < 2; i++) {
        FILE *f = fopen(fashion[i], "rb");
        if (!f)
            continue;
        fseek(f, 0, SEEK_END);
        long n = ftell(f);
        rewind(f);
        unsigned char *bytes = malloc((size_t)n);
        assert_non_null(bytes);
        assert_int_equal(fread(bytes, 1, (size_t)n, f), (size_t)n);
        fclose(f);
        assert_int_equal(same_as_zlib(bytes, (size_t)n, fashion[i]), 0);
        free(bytes);
    }
}

/* ---- Hand-built streams ------------------------------------------------------ */

/* DEFLATE's bit order: values from the lowest bit, Huffman codes from the
 * highest. */
struct bits {
    unsigned char b[256];
    size_t n; /* bits */
};

static void put_bits(struct bits *w, unsigned v, int count)
{
    for (int i = 0; i < count; i++, w->n++)
        if (v >> i & 1)
            w->b[w->n / 8] |= (unsigned char)(1u << (w->n % 8));
}

static void put_code(struct bits *w, unsigned code, int len)
{
    for (int i = len - 1; i >= 0; i--)
        put_bits(w, code >> i & 1, 1);
}

/* Wraps raw DEFLATE in a gzip member whose trailer describes `data`. */
static size_t gzip_member(const struct bits *w, const unsigned char *data, size_t data_len,
                          unsigned char *out)
{
    static const unsigned char head[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};
    memcpy(out, head, 10);
    size_t n = 10 + (w->n + 7) / 8;
    memcpy(out + 10, w->b, n - 10);
    uLong crc = crc32(0, data, (uInt)data_len);
    for (int i = 0; i < 4; i++) {
        out[n + (size_t)i] = (unsigned char)(crc >> (8 * i));
        out[n + 4 + (size_t)i] = (unsigned char)(data_len >> (8 * i));
    }
    return n + 8;
}

/* A dynamic block holding only end-of-block, whose literal/length code is
 * that one symbol with code length eob_len, and whose one distance code has
 * length dist_len (0: none).  RFC 1951 and zlib allow an incomplete code
 * only when it is a single code of length 1. */
static size_t lone_code_block(int eob_len, int dist_len, unsigned char *out)
{
    struct bits w = {{0}, 0};
    put_bits(&w, 1, 1);  /* BFINAL */
    put_bits(&w, 2, 2);  /* dynamic */
    put_bits(&w, 0, 5);  /* HLIT: 257 codes */
    put_bits(&w, 0, 5);  /* HDIST: 1 code */
    put_bits(&w, 15, 4); /* HCLEN: all 19 code-length codes */
    /* Code-length code: 18 (a run of zeros) 1 bit "0", eob_len and dist_len
     * (or 0 when they are equal or dist_len is 0) 2 bits "10" and "11". */
    int second = dist_len && dist_len != eob_len ? dist_len : 0;
    static const int order[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};
    int lens[19] = {0};
    lens[18] = 1;
    lens[eob_len] = 2;
    lens[second] = 2;
    for (int i = 0; i < 19; i++)
        put_bits(&w, (unsigned)lens[order[i]], 3);
    /* canonical codes: 18 -> 0; then the two 2-bit codes in symbol order */
    int lo = eob_len < second ? eob_len : second, hi = eob_len < second ? second : eob_len;
    unsigned code_of[19] = {0};
    code_of[lo] = 2;
    code_of[hi] = 3;
    put_code(&w, 0, 1);
    put_bits(&w, 138 - 11, 7); /* 138 zeros */
    put_code(&w, 0, 1);
    put_bits(&w, 118 - 11, 7); /* 118 more: symbols 0..255 */
    put_code(&w, code_of[eob_len], 2); /* symbol 256 */
    put_code(&w, code_of[dist_len], 2); /* the distance code */
    put_code(&w, 0, eob_len);           /* end-of-block: the one code, all zeros */
    return gzip_member(&w, NULL, 0, out);
}

static void test_lone_codes(void **state)
{
    (void)state;
    unsigned char gz[300];
    /* valid: end-of-block alone with a 1-bit code, no or a 1-bit distance code */
    assert_int_equal(same_as_zlib(gz, lone_code_block(1, 0, gz), "lone EOB, 1 bit"), 0);
    assert_int_equal(same_as_zlib(gz, lone_code_block(1, 1, gz), "lone distance, 1 bit"), 0);
    /* Regression: nna_gunzip took any single code, zlib only a 1-bit one. */
    assert_int_equal(same_as_zlib(gz, lone_code_block(2, 0, gz), "lone EOB, 2 bits"), -1);
    assert_int_equal(same_as_zlib(gz, lone_code_block(3, 0, gz), "lone EOB, 3 bits"), -1);
    assert_int_equal(same_as_zlib(gz, lone_code_block(1, 3, gz), "lone distance, 3 bits"), -1);
}

/* Regression: a second member's back reference into the first member's
 * output.  Each member is a stream of its own (zlib: "invalid distance too
 * far back"); nna_gunzip measured distances from the start of the output. */
static void test_distance_across_members(void **state)
{
    (void)state;
    unsigned char gz[600];
    size_t a_len;
    unsigned char *a = deflate_gz((const unsigned char *)"abcdef", 6, 6, Z_DEFAULT_STRATEGY, NULL,
                                  &a_len);
    memcpy(gz, a, a_len);
    free(a);
    /* fixed block: length 3 (symbol 257, code 0000001), distance 1 (code 00000), EOB */
    struct bits w = {{0}, 0};
    put_bits(&w, 1, 1);
    put_bits(&w, 1, 2);
    put_code(&w, 1, 7);
    put_code(&w, 0, 5);
    put_code(&w, 0, 7);
    size_t n = a_len + gzip_member(&w, (const unsigned char *)"fff", 3, gz + a_len);
    assert_int_equal(same_as_zlib(gz, n, "a back reference into the member before"), -1);
    /* the same block after a literal is fine */
    memset(&w, 0, sizeof w);
    put_bits(&w, 1, 1);
    put_bits(&w, 1, 2);
    put_code(&w, 0x30 + 'f', 8); /* literal 'f' */
    put_code(&w, 1, 7);
    put_code(&w, 0, 5);
    put_code(&w, 0, 7);
    n = a_len + gzip_member(&w, (const unsigned char *)"ffff", 4, gz + a_len);
    assert_int_equal(same_as_zlib(gz, n, "a back reference inside its member"), 0);
}

/* Regression: FHCRC, the header's CRC, was skipped rather than checked. */
static void test_header_crc(void **state)
{
    (void)state;
    gz_header head = {.name = (Bytef *)"x", .hcrc = 1};
    size_t len;
    unsigned char *gz = deflate_gz((const unsigned char *)"hello", 5, 6, Z_DEFAULT_STRATEGY,
                                   &head, &len);
    assert_int_equal(same_as_zlib(gz, len, "a header CRC"), 0);
    gz[12] ^= 1; /* the CRC's low byte, after 10 bytes and the name "x\0" */
    assert_int_equal(same_as_zlib(gz, len, "a wrong header CRC"), -1);
    gz[12] ^= 1;
    gz[4] ^= 1; /* MTIME: now the CRC does not match the header */
    assert_int_equal(same_as_zlib(gz, len, "a header changed under its CRC"), -1);
    free(gz);
}

/* The output limit holds, and a failure leaves nothing allocated. */
static void test_limit(void **state)
{
    (void)state;
    unsigned char *buf = sample(5000, 2, 1);
    size_t len;
    unsigned char *gz = deflate_gz(buf, 5000, 9, Z_DEFAULT_STRATEGY, NULL, &len);
    unsigned char *out;
    size_t out_len;
    char err[200];
    assert_int_equal(nna_gunzip(gz, len, 4999, &out, &out_len, err, sizeof err), -1);
    assert_null(out);
    assert_non_null(strstr(err, "limit"));
    assert_int_equal(nna_gunzip(gz, len, 5000, &out, &out_len, err, sizeof err), 0);
    assert_int_equal(out_len, 5000);
    free(out);
    free(gz);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generated),
        cmocka_unit_test(test_members_and_headers),
        cmocka_unit_test(test_corpora),
        cmocka_unit_test(test_lone_codes),
        cmocka_unit_test(test_distance_across_members),
        cmocka_unit_test(test_header_crc),
        cmocka_unit_test(test_limit),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    printf("%d inputs compared with zlib, %d decoded by both\n", checked, accepted);
    return rc;
}
