/*
 * deploy_inflate.c - gzip and DEFLATE (RFC 1951/1952) decoding for the
 * standalone deployment program, which links nothing but the C library and
 * so cannot use zlib.  Written after Mark Adler's puff.c: canonical Huffman
 * codes decoded bit by bit from per-length counts (slow but small and easy
 * to check; a Fashion-MNIST test set inflates in well under a second).
 *
 It streams both ways: compressed bytes are pulled from a source
 * (struct nna_src: bytes in memory, refilled by a callback) and the output
 * goes to a sink callback 32 KiB at a time, through a 64 KiB window that
 * holds what back references may reach, so memory is a constant and the
 * sink (deploy_read.c) can check a header, and stop a gzip bomb, as soon as
 * its bytes are out.  nna_gunzip() is the same decoder into one buffer.
 *
 * Contract: every input byte is read through nna_src_byte(), which fails on the
 * end of the input; every back reference is checked against this stream's
 * output so far (not an earlier gzip member's); code tables are checked for
 * over-subscription and (as zlib does) incompleteness.  Errors set a
 * message and return -1 (or the sink's own status, with its message).  Each gzip member's CRC-32 and length, and a
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

#define INF_WIN 65536 /* the window: twice the farthest back reference */

struct inf {
    struct nna_src *src;
    unsigned long bitbuf; /* bits not yet used, lowest first */
    int bitcnt;
    unsigned char *win;   /* the last output, INF_WIN bytes */
    size_t wlen;
    uint64_t total;       /* this stream's output: no reference reaches before it */
    uint32_t crc;         /* of the output handed to the sink */
    nna_sink sink;
    void *ctx;
    char *err;
    size_t err_size;
    int sink_rc;     /* the sink's refusal, which set err itself */
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

static uint32_t crc32_update(uint32_t crc, const unsigned char *p, size_t n);

int nna_src_byte(struct nna_src *src)
{
    if (src->pos == src->len) {
        if (!src->fill || src->done)
            return -1;
        src->consumed += src->len;
        src->pos = src->len = 0;
        if (src->fill(src->ctx, &src->p, &src->len))
            src->error = 1;
        if (src->error || src->len == 0) {
            src->done = 1; /* nothing more either way */
            return -1;
        }
    }
    return src->p[src->pos++];
}

/* need bits (at most 16) from the input, or -1 at its end. */
static long need_bits(struct inf *s, int need)
{
    unsigned long val = s->bitbuf;
    while (s->bitcnt < need) {
        int c = nna_src_byte(s->src);
        if (c < 0)
            return fail(s, "truncated compressed data");
        val |= (unsigned long)c << s->bitcnt;
        s->bitcnt += 8;
    }
    s->bitbuf = val >> need;
    s->bitcnt -= need;
    return (long)(val & ((1UL << need) - 1));
}

/* Hands the oldest n bytes of the window to the sink. */
static int flush(struct inf *s, size_t n)
{
    if (n == 0)
        return 0;
    s->crc = crc32_update(s->crc, s->win, n);
    int rc = s->sink(s->ctx, s->win, n, s->err, s->err_size);
    if (rc) {
        s->sink_rc = rc;
        return fail(s, "stopped by the reader");
    }
    memmove(s->win, s->win + n, s->wlen - n);
    s->wlen -= n;
    return 0;
}

static int put_byte(struct inf *s, unsigned char c)
{
    if (s->wlen == INF_WIN && flush(s, INF_WIN / 2))
        return -1;
    s->win[s->wlen++] = c;
    s->total++;
    return 0;
}

/* A stored block: LEN, NLEN, then LEN bytes, from the next byte boundary. */
static int stored(struct inf *s)
{
    s->bitbuf = 0;
    s->bitcnt = 0;
    int b[4];
    for (int i = 0; i < 4; i++)
        if ((b[i] = nna_src_byte(s->src)) < 0)
            return fail(s, "truncated stored block");
    unsigned n = (unsigned)b[0] | (unsigned)b[1] << 8;
    unsigned nn = (unsigned)b[2] | (unsigned)b[3] << 8;
    if (n != (~nn & 0xffffu))
        return fail(s, "stored block length does not match its complement");
    for (unsigned i = 0; i < n; i++) {
        int c = nna_src_byte(s->src);
        if (c < 0)
            return fail(s, "truncated stored block");
        if (put_byte(s, (unsigned char)c))
            return -1;
    }
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
            if (dist > s->total)
                return fail(s, "distance too far back");
            for (size_t i = 0; i < len; i++) /* the window always holds dist bytes */
                if (put_byte(s, s->win[s->wlen - dist]))
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

/* One raw DEFLATE stream (RFC 1951), all its output through the sink. */
static int inflate_stream(struct inf *s)
{
    int last = 0, rc = 0;
    while (!last && rc == 0) {
        long l = need_bits(s, 1), type = l < 0 ? -1 : need_bits(s, 2);
        if (l < 0 || type < 0) {
            rc = -1;
            break;
        }
        last = (int)l;
        if (type == 0)
            rc = stored(s);
        else if (type == 1)
            rc = fixed(s);
        else if (type == 2)
            rc = dynamic(s);
        else
            rc = fail(s, "invalid block type 3");
    }
    if (rc == 0)
        rc = flush(s, s->wlen);
    s->bitbuf = 0; /* unused bits of the last byte are padding */
    s->bitcnt = 0;
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

/* Reads n bytes of a gzip header or trailer; -1 at the end of the input. */
static int src_bytes(struct nna_src *src, unsigned char *p, int n)
{
    for (int i = 0; i < n; i++) {
        int c = nna_src_byte(src);
        if (c < 0)
            return -1;
        p[i] = (unsigned char)c;
    }
    return 0;
}

/* One member's header, after its two magic bytes; NULL or why not. */
static const char *gzip_header(struct nna_src *src)
{
    unsigned char h[10] = {0x1f, 0x8b}, b[2];
    if (src_bytes(src, h + 2, 8))
        return "truncated gzip header";
    if (h[2] != 8)
        return "unknown gzip compression method";
    if (h[3] & 0xe0)
        return "reserved gzip header flags set";
    unsigned flg = h[3];
    uint32_t crc = crc32_update(0, h, 10); /* FHCRC: the low 16 bits of the header's CRC-32 */
    if (flg & 4) { /* FEXTRA */
        if (src_bytes(src, b, 2))
            return "truncated gzip header";
        crc = crc32_update(crc, b, 2);
        for (size_t xlen = b[0] | (size_t)b[1] << 8; xlen > 0; xlen--) {
            if (src_bytes(src, b, 1))
                return "truncated gzip header";
            crc = crc32_update(crc, b, 1);
        }
    }
    for (unsigned bit = 8; bit <= 16; bit <<= 1) /* FNAME, FCOMMENT: NUL-terminated */
        if (flg & bit)
            do {
                if (src_bytes(src, b, 1))
                    return "truncated gzip header";
                crc = crc32_update(crc, b, 1);
            } while (b[0]);
    if (flg & 2) {
        if (src_bytes(src, b, 2))
            return "truncated gzip header";
        if ((crc & 0xffffu) != (b[0] | (unsigned)b[1] << 8))
            return "corrupt gzip header: CRC mismatch";
    }
    return NULL;
}

int nna_gunzip_stream(struct nna_src *src, int magic_read, nna_sink sink, void *ctx, char *err,
                      size_t err_size)
{
    struct inf s = {.src = src, .sink = sink, .ctx = ctx, .err = err, .err_size = err_size};
    s.win = malloc(INF_WIN);
    if (!s.win) {
        snprintf(err, err_size, "out of memory");
        return NNA_EMEM;
    }
    int rc = 0;
    /* Another member follows when the next bytes are a gzip magic; anything
     * else after a member is ignored, as gzip(1) does. */
    for (int members = 0;; members++) {
        unsigned char m[2] = {0x1f, 0x8b};
        int end = members == 0 && magic_read ? 0 : src_bytes(src, m, 2);
        if (end || m[0] != 0x1f || m[1] != 0x8b) {
            if (members == 0) {
                snprintf(err, err_size, "%s", end ? "truncated gzip header" : "not a gzip file");
                rc = -1;
            }
            break;
        }
        const char *why = gzip_header(src);
        if (why) {
            snprintf(err, err_size, "%s", why);
            rc = -1;
            break;
        }
        s.total = 0;
        s.crc = 0;
        s.why = NULL;
        if (inflate_stream(&s)) {
            if (s.sink_rc)
                rc = s.sink_rc; /* the sink's message is in err */
            else {
                snprintf(err, err_size, "corrupt gzip data: %s (at compressed byte %llu)", s.why,
                         (unsigned long long)(src->consumed + src->pos));
                rc = -1;
            }
            break;
        }
        unsigned char t[8];
        if (src_bytes(src, t, 8)) {
            snprintf(err, err_size, "truncated gzip stream: its trailer is missing");
            rc = -1;
            break;
        }
        if (le32(t) != s.crc || le32(t + 4) != (uint32_t)s.total) {
            snprintf(err, err_size, "corrupt gzip data: CRC or length mismatch");
            rc = -1;
            break;
        }
    }
    free(s.win);
    return rc;
}

/* nna_gunzip's sink: appends to a buffer of at most max_out bytes. */
struct buf_sink {
    unsigned char *p;
    size_t n, cap, max;
};

static int buf_put(void *ctx, const unsigned char *p, size_t n, char *err, size_t err_size)
{
    struct buf_sink *b = ctx;
    if (n > b->max - b->n) {
        snprintf(err, err_size, "corrupt gzip data: decompressed data larger than the limit");
        return -1;
    }
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 65536;
        while (cap < b->n + n)
            cap = cap > b->max / 2 ? b->max : cap * 2;
        unsigned char *q = realloc(b->p, cap);
        if (!q) {
            snprintf(err, err_size, "out of memory");
            return NNA_EMEM;
        }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
    return 0;
}

int nna_gunzip(const unsigned char *in, size_t len, size_t max_out, unsigned char **out,
               size_t *out_len, char *err, size_t err_size)
{
    struct nna_src src = {.p = in, .len = len};
    struct buf_sink b = {.max = max_out};
    *out = NULL;
    *out_len = 0;
    int rc = nna_gunzip_stream(&src, 0, buf_put, &b, err, err_size);
    if (rc) {
        free(b.p);
        return rc;
    }
    *out = b.p;
    *out_len = b.n;
    return 0;
}
