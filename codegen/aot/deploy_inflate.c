/*
 * deploy_inflate.c - gzip and DEFLATE (RFC 1951/1952) decoding for the
 * standalone deployment program, which links nothing but the C library and
 * so cannot use zlib.  Written after Mark Adler's puff.c: canonical Huffman
 * codes decoded bit by bit from per-length counts (slow but small and easy
 * to check; a Fashion-MNIST test set inflates in well under a second).
 *
 * Contract: every input byte is read through need_bits(), which fails on
 * the end of the input; every back reference is checked against this
 * stream's output so far (not an earlier gzip member's); code tables are
 * checked for over-subscription and (as zlib does) incompleteness; the
 * output never grows past max_out.  Errors set a message and return -1; the
 * output buffer is then freed.  Each gzip member's CRC-32 and length, and a
 * header CRC when there is one, are checked.  No global mutable state.
 * tests/codegen/test_inflate.c holds it to zlib's answers: the same bytes,
 * or a refusal where zlib refuses.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "deploy.h"

#define INF_MAXBITS 15
#define INF_MAXLCODES 286
#define INF_MAXDCODES 30
#define INF_FIXLCODES 288

struct inf {
    const unsigned char *in;
    size_t len, pos;
    unsigned long bitbuf; /* bits not yet used, lowest first */
    int bitcnt;
    unsigned char *out;
    size_t start;         /* where this stream's output begins: no reference reaches before */
    size_t out_len, out_cap, max_out;
    const char *why; /* set on the first error */
};

struct huff {
    short count[INF_MAXBITS + 1]; /* codes of each length */
    short symbol[INF_FIXLCODES];  /* symbols in canonical order */
};

static int fail(struct inf *s, const char *why)
{
    if (!s->why)
        s->why = why;
    return -1;
}

/* need bits (at most 16) from the input, or -1 at its end. */
static long need_bits(struct inf *s, int need)
{
    unsigned long val = s->bitbuf;
    while (s->bitcnt < need) {
        if (s->pos >= s->len)
            return fail(s, "truncated compressed data");
        val |= (unsigned long)s->in[s->pos++] << s->bitcnt;
        s->bitcnt += 8;
    }
    s->bitbuf = val >> need;
    s->bitcnt -= need;
    return (long)(val & ((1UL << need) - 1));
}

static int put_byte(struct inf *s, unsigned char c)
{
    if (s->out_len == s->out_cap) {
        if (s->out_cap >= s->max_out)
            return fail(s, "decompressed data larger than the limit");
        size_t cap = s->out_cap ? s->out_cap * 2 : 65536;
        if (cap > s->max_out || cap < s->out_cap)
            cap = s->max_out;
        unsigned char *p = realloc(s->out, cap);
        if (!p)
            return fail(s, "out of memory");
        s->out = p;
        s->out_cap = cap;
    }
    s->out[s->out_len++] = c;
    return 0;
}

/* A stored block: LEN, NLEN, then LEN bytes, from the next byte boundary. */
static int stored(struct inf *s)
{
    s->bitbuf = 0;
    s->bitcnt = 0;
    if (s->len - s->pos < 4)
        return fail(s, "truncated stored block");
    unsigned n = s->in[s->pos] | (unsigned)s->in[s->pos + 1] << 8;
    unsigned nn = s->in[s->pos + 2] | (unsigned)s->in[s->pos + 3] << 8;
    s->pos += 4;
    if (n != (~nn & 0xffffu))
        return fail(s, "stored block length does not match its complement");
    if (s->len - s->pos < n)
        return fail(s, "truncated stored block");
    for (unsigned i = 0; i < n; i++)
        if (put_byte(s, s->in[s->pos + i]))
            return -1;
    s->pos += n;
    return 0;
}

/* One symbol of code h, or -1. */
static int decode(struct inf *s, const struct huff *h)
{
    int code = 0, first = 0, index = 0;
    for (int len = 1; len <= INF_MAXBITS; len++) {
        long bit = need_bits(s, 1);
        if (bit < 0)
            return -1;
        code |= (int)bit;
        int count = h->count[len];
        if (code - count < first)
            return h->symbol[index + (code - first)];
        index += count;
        first += count;
        first <<= 1;
        code <<= 1;
    }
    return fail(s, "invalid Huffman code");
}

/* Builds a code from n code lengths.  Returns 0 for a complete code, > 0
 * for an incomplete one, < 0 for an over-subscribed one. */
static int construct(struct huff *h, const short *length, int n)
{
    for (int len = 0; len <= INF_MAXBITS; len++)
        h->count[len] = 0;
    for (int sym = 0; sym < n; sym++)
        h->count[length[sym]]++;
    if (h->count[0] == n)
        return 0; /* no codes: complete, but decoding any symbol fails */
    int left = 1;
    for (int len = 1; len <= INF_MAXBITS; len++) {
        left <<= 1;
        left -= h->count[len];
        if (left < 0)
            return left;
    }
    short offs[INF_MAXBITS + 1];
    offs[1] = 0;
    for (int len = 1; len < INF_MAXBITS; len++)
        offs[len + 1] = (short)(offs[len] + h->count[len]);
    for (int sym = 0; sym < n; sym++)
        if (length[sym] != 0)
            h->symbol[offs[length[sym]]++] = (short)sym;
    return left;
}

static const short len_base[29] = {3,  4,  5,  6,  7,  8,  9,  10, 11,  13,  15,  17,  19,  23, 27,
                                   31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
static const short len_extra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
                                    2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
static const unsigned short dist_base[30] = {
    1,   2,   3,   4,   5,   7,    9,    13,   17,   25,   33,   49,   65,    97,    129,
    193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
static const short dist_extra[30] = {0, 0, 0, 0, 1, 1, 2, 2,  3,  3,  4,  4,  5,  5,  6,
                                     6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};

/* Literals and length/distance pairs until the end-of-block symbol. */
static int codes(struct inf *s, const struct huff *lencode, const struct huff *distcode)
{
    for (;;) {
        int sym = decode(s, lencode);
        if (sym < 0)
            return -1;
        if (sym < 256) {
            if (put_byte(s, (unsigned char)sym))
                return -1;
        } else if (sym == 256) {
            return 0;
        } else {
            sym -= 257;
            if (sym >= 29)
                return fail(s, "invalid length symbol");
            long extra = need_bits(s, len_extra[sym]);
            if (extra < 0)
                return -1;
            size_t len = (size_t)len_base[sym] + (size_t)extra;
            int dsym = decode(s, distcode);
            if (dsym < 0)
                return -1;
            if (dsym >= 30)
                return fail(s, "invalid distance symbol");
            long dextra = need_bits(s, dist_extra[dsym]);
            if (dextra < 0)
                return -1;
            size_t dist = (size_t)dist_base[dsym] + (size_t)dextra;
            if (dist > s->out_len - s->start)
                return fail(s, "distance too far back");
            for (size_t i = 0; i < len; i++)
                if (put_byte(s, s->out[s->out_len - dist]))
                    return -1;
        }
    }
}

static int fixed(struct inf *s)
{
    struct huff lencode, distcode;
    short lengths[INF_FIXLCODES];
    int sym = 0;
    for (; sym < 144; sym++)
        lengths[sym] = 8;
    for (; sym < 256; sym++)
        lengths[sym] = 9;
    for (; sym < 280; sym++)
        lengths[sym] = 7;
    for (; sym < INF_FIXLCODES; sym++)
        lengths[sym] = 8;
    construct(&lencode, lengths, INF_FIXLCODES);
    for (sym = 0; sym < INF_MAXDCODES; sym++)
        lengths[sym] = 5;
    construct(&distcode, lengths, INF_MAXDCODES);
    return codes(s, &lencode, &distcode);
}

static int dynamic(struct inf *s)
{
    static const short order[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};
    short lengths[INF_MAXLCODES + INF_MAXDCODES];
    struct huff lencode, distcode;
    long nlen = need_bits(s, 5), ndist = need_bits(s, 5), ncode = need_bits(s, 4);
    if (nlen < 0 || ndist < 0 || ncode < 0)
        return -1;
    nlen += 257;
    ndist += 1;
    ncode += 4;
    if (nlen > INF_MAXLCODES || ndist > INF_MAXDCODES)
        return fail(s, "too many length or distance codes");
    int index;
    for (index = 0; index < ncode; index++) {
        long v = need_bits(s, 3);
        if (v < 0)
            return -1;
        lengths[order[index]] = (short)v;
    }
    for (; index < 19; index++)
        lengths[order[index]] = 0;
    if (construct(&lencode, lengths, 19) != 0)
        return fail(s, "incomplete or over-subscribed code-length code");
    for (index = 0; index < nlen + ndist;) {
        int sym = decode(s, &lencode);
        if (sym < 0)
            return -1;
        if (sym < 16) {
            lengths[index++] = (short)sym;
            continue;
        }
        short len = 0;
        long rep;
        if (sym == 16) {
            if (index == 0)
                return fail(s, "repeat with no previous length");
            len = lengths[index - 1];
            rep = need_bits(s, 2);
            rep = rep < 0 ? -1 : 3 + rep;
        } else if (sym == 17) {
            rep = need_bits(s, 3);
            rep = rep < 0 ? -1 : 3 + rep;
        } else {
            rep = need_bits(s, 7);
            rep = rep < 0 ? -1 : 11 + rep;
        }
        if (rep < 0)
            return -1;
        if (index + rep > nlen + ndist)
            return fail(s, "too many code lengths");
        while (rep--)
            lengths[index++] = len;
    }
    if (lengths[256] == 0)
        return fail(s, "no end-of-block code");
    /* An incomplete code is allowed only as a single code of length 1 (as
     * zlib and puff.c do): one symbol of a longer length is damage. */
    int err = construct(&lencode, lengths, (int)nlen);
    if (err < 0 || (err > 0 && nlen != lencode.count[0] + lencode.count[1]))
        return fail(s, "incomplete or over-subscribed literal/length code");
    err = construct(&distcode, lengths + nlen, (int)ndist);
    if (err < 0 || (err > 0 && ndist != distcode.count[0] + distcode.count[1]))
        return fail(s, "incomplete or over-subscribed distance code");
    return codes(s, &lencode, &distcode);
}

int nna_inflate(const unsigned char *in, size_t len, size_t *pos, size_t max_out,
                unsigned char **out, size_t *out_len, size_t *out_cap, char *err,
                size_t err_size)
{
    struct inf s = {.in = in, .len = len, .pos = *pos, .out = *out, .start = *out_len,
                    .out_len = *out_len, .out_cap = *out_cap, .max_out = max_out};
    int last = 0, rc = 0;
    while (!last && rc == 0) {
        long l = need_bits(&s, 1), type = l < 0 ? -1 : need_bits(&s, 2);
        if (l < 0 || type < 0) {
            rc = -1;
            break;
        }
        last = (int)l;
        if (type == 0)
            rc = stored(&s);
        else if (type == 1)
            rc = fixed(&s);
        else if (type == 2)
            rc = dynamic(&s);
        else
            rc = fail(&s, "invalid block type 3");
    }
    *out = s.out;
    *out_len = s.out_len;
    *out_cap = s.out_cap;
    *pos = s.pos; /* unused bits of the last byte are padding */
    if (rc)
        snprintf(err, err_size, "corrupt gzip data: %s (at compressed byte %zu)", s.why,
                 s.pos);
    return rc;
}

static uint32_t crc32_update(uint32_t crc, const unsigned char *p, size_t n)
{
    uint32_t table[256];
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
        table[i] = c;
    }
    crc = ~crc;
    for (size_t i = 0; i < n; i++)
        crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
    return ~crc;
}

static uint32_t le32(const unsigned char *p)
{
    return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int nna_gunzip(const unsigned char *in, size_t len, size_t max_out, unsigned char **out,
               size_t *out_len, char *err, size_t err_size)
{
    unsigned char *buf = NULL;
    size_t n = 0, cap = 0, pos = 0;
    int members = 0;
    *out = NULL;
    *out_len = 0;
    /* Another member follows when the next bytes are a gzip magic. */
    while (members == 0 || (len - pos >= 2 && in[pos] == 0x1f && in[pos + 1] == 0x8b)) {
        const char *why = NULL;
        if (len - pos < 10)
            why = "truncated gzip header";
        else if (in[pos] != 0x1f || in[pos + 1] != 0x8b)
            why = "not a gzip file";
        else if (in[pos + 2] != 8)
            why = "unknown gzip compression method";
        else if (in[pos + 3] & 0xe0)
            why = "reserved gzip header flags set";
        if (!why) {
            unsigned flg = in[pos + 3];
            size_t head = pos;
            pos += 10;
            if (flg & 4) { /* FEXTRA */
                if (len - pos < 2) {
                    why = "truncated gzip header";
                } else {
                    size_t xlen = in[pos] | (size_t)in[pos + 1] << 8;
                    pos += 2;
                    if (len - pos < xlen)
                        why = "truncated gzip header";
                    else
                        pos += xlen;
                }
            }
            for (unsigned bit = 8; bit <= 16 && !why; bit <<= 1) /* FNAME, FCOMMENT */
                if (flg & bit) {
                    while (pos < len && in[pos])
                        pos++;
                    if (pos == len)
                        why = "truncated gzip header";
                    else
                        pos++;
                }
            if (!why && (flg & 2)) { /* FHCRC: the low 16 bits of the header's CRC-32 */
                if (len - pos < 2)
                    why = "truncated gzip header";
                else if ((crc32_update(0, in + head, pos - head) & 0xffffu) !=
                         (in[pos] | (unsigned)in[pos + 1] << 8))
                    why = "corrupt gzip header: CRC mismatch";
                else
                    pos += 2;
            }
        }
        if (why) {
            snprintf(err, err_size, "%s", why);
            free(buf);
            return -1;
        }
        size_t start = n;
        if (nna_inflate(in, len, &pos, max_out, &buf, &n, &cap, err, err_size)) {
            free(buf);
            return -1;
        }
        if (len - pos < 8) {
            snprintf(err, err_size, "truncated gzip stream: its trailer is missing");
            free(buf);
            return -1;
        }
        uint32_t crc = n > start ? crc32_update(0, buf + start, n - start) : 0;
        if (le32(in + pos) != crc ||
            le32(in + pos + 4) != (uint32_t)(n - start)) {
            snprintf(err, err_size, "corrupt gzip data: CRC or length mismatch");
            free(buf);
            return -1;
        }
        pos += 8;
        members++;
    }
    *out = buf;
    *out_len = n;
    return 0;
}
